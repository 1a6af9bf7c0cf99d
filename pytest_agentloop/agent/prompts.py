"""What the agent is told: the system prompt, the task, named directives, and the tool-call format.

Directives are named so a config cell can switch one on as a single tuning factor. In "prompted" and
"constrained" tool modes the tools are written into the prompt with one exact call format, because
the runtime will not render them; "constrained" also yields the JSON schema the reply must match.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from pytest_agentloop.canary import Canary
from pytest_agentloop.cells import ToolMode
from pytest_agentloop.records import MalformedCall, ToolResult

DIRECTIVES: dict[str, str] = {
    "completeness": (
        "Before pushing, list every file, function and site the task names, and confirm each one is "
        "done; if one is not, do it first."
    ),
    "one_call_per_turn": "Make exactly one tool call per reply, then wait for its result.",
    "test_first": "Run the tests before changing anything, so you know what fails and why.",
}

NUDGE = (
    "Your reply had no tool call. Act only through the tools: call one now "
    "(finish when the work is pushed, escalate if it cannot be done)."
)

_RULES = """You are an autonomous coding agent working in a git repository.
You act only through the tools; text outside tool calls does nothing.
Work like this: read what you need, edit the files, run the tests, commit, push, then call finish.
Work counts only once it is pushed. If the task cannot be done as specified (it contradicts itself,
or needs something you cannot have), call escalate with the reason instead of guessing."""


_BARE = '{"name": "TOOL", "arguments": {...}}'
_TAGGED = f"<tool_call>{_BARE}</tool_call>"


class UnknownDirective(ValueError):
    """A cell names a directive that does not exist."""


def system_prompt(
    tools: Sequence[dict[str, Any]], tool_mode: ToolMode, directives: Iterable[str] = ()
) -> str:
    parts = [_RULES]
    if tool_mode == "prompted":
        parts.append(_tools_in_prompt(tools, "Call a tool by writing, anywhere in your reply:", _TAGGED))
    elif tool_mode == "constrained":
        parts.append(_tools_in_prompt(tools, "Each reply is exactly one tool call, one JSON object:", _BARE))
    parts.extend(directive_texts(directives))
    return "\n\n".join(parts)


def directive_texts(names: Iterable[str]) -> list[str]:
    texts = []
    for name in names:
        if name not in DIRECTIVES:
            raise UnknownDirective(
                f"unknown directive {name!r}; use one of: {', '.join(sorted(DIRECTIVES))} "
                "(see pytest_agentloop/agent/prompts.py)."
            )
        texts.append(DIRECTIVES[name])
    return texts


def task_message(canary: Canary) -> str:
    return (
        f"Task: {canary.spec.title}\n\n{canary.spec.spec.strip()}\n\n"
        f"The tests run with `{canary.spec.test_command}` (the run_tests tool)."
    )


def _tools_in_prompt(tools: Sequence[dict[str, Any]], how: str, example: str) -> str:
    lines = [
        "Tools:",
        *(
            f"- {t['function']['name']}: {t['function']['description']} "
            f"Arguments (JSON schema): {json.dumps(t['function']['parameters'], separators=(',', ':'))}"
            for t in tools
        ),
        "",
        how,
        example,
    ]
    return "\n".join(lines)


def constrained_schema(tools: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The whole reply must be one call: anyOf over tools of {"name": const, "arguments": params}."""
    return {
        "anyOf": [
            {
                "type": "object",
                "properties": {
                    "name": {"const": t["function"]["name"]},
                    "arguments": t["function"]["parameters"],
                },
                "required": ["name", "arguments"],
                "additionalProperties": False,
            }
            for t in tools
        ]
    }


def results_message(results: Sequence[ToolResult], malformed: Sequence[MalformedCall]) -> str:
    """Tool results and call errors as one user message, for modes without `role: tool` messages.

    `done` says the tool did its job (the tests it ran may still have failed), `error` that it could
    not: `[run_tests ok]` above "failed (exit code 1)" read as a contradiction.
    """
    blocks = [f"[{r.name} {'done' if r.ok else 'error'}]\n{r.output}" for r in results]
    blocks.extend(malformed_texts(malformed))
    return "\n\n".join(blocks) if blocks else NUDGE


def malformed_texts(malformed: Sequence[MalformedCall]) -> list[str]:
    return [f"[tool call not used: {m.kind}] {m.error}" for m in malformed]
