"""An agent that is a command line: your own loop or a CLI agent, evaluated on the same canaries.

The command runs with /bin/sh in the attempt's work tree, inside the sandbox, with the canary's
time budget as its time limit. It reads the spec on stdin (also in `$AGENTLOOP_SPEC_FILE`),
finds the model in `$AGENTLOOP_MODEL_URL` / `$AGENTLOOP_MODEL`, and must commit and push its
work like any agent: the hidden checks grade what reached origin. Exit status 3 means it
escalated (its last output line is the reason); any other status means it is done.

Unlike run_tests, its sandbox has the network (its model), `.git` and origin writable (it commits
and pushes itself) and `$AGENTLOOP_ROOT` read-only (its program); the harness's git does not trust
what it leaves in them (workspace.py).

Counters are read from the JSON-lines transcript it may write to `$AGENTLOOP_TRANSCRIPT`, one
line per turn (docs/extending.md):

    {"content": "...", "tool_calls": [{"name": "write_file", "arguments": {...}, "ok": true,
     "output": "..."}], "usage": {"prompt_tokens": 812, "completion_tokens": 95}, "latency_s": 1.4}

Without a transcript (or with an unreadable one) turns, tool calls and tokens are null, never
zero: the harness did not see them. Malformed, redundant and text-recovered calls are always
null, since only the agent's own parser saw its model's raw replies.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_agentloop.agent.base import AgentTask, Episode
from pytest_agentloop.backends.base import Backend, BackendError, ModelSpec
from pytest_agentloop.records import Limit, ToolCall, ToolResult, Transcript, Turn, Usage
from pytest_agentloop.sandbox import SandboxResult, run_sandboxed

ESCALATE_EXIT = 3
# Never measurable from outside the agent, so always null for an external agent.
UNSEEN = ("malformed_tool_calls", "redundant_tool_calls", "text_tool_calls", "truncated_replies")
REPORTED = ("turns", "tool_calls", "prompt_tokens", "completion_tokens")


class ExternalAgentSettings(BaseModel):
    """One `[agents.NAME]` table: evaluated with `--agent-model external:NAME`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(
        min_length=1, description="Shell command run in the work tree; $AGENTLOOP_ROOT is the rootdir."
    )
    model: str | None = Field(
        None, description="Model spec the agent talks to; its URL and name go in the env."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for the command."
    )
    pass_env: list[str] = Field(
        default_factory=list, description="Names of the harness's variables passed through (e.g. API keys)."
    )


def external_settings(agents: Mapping[str, Any], name: str) -> ExternalAgentSettings:
    """The validated `[agents.NAME]` table, or a BackendError naming the table and the fix."""
    table = agents.get(name)
    if table is None:
        known = ", ".join(sorted(agents)) or "none"
        raise BackendError(
            f"external:{name}: no [agents.{name}] table in the configuration (defined: {known}); "
            f'add one with command = "..."'
        )
    try:
        return ExternalAgentSettings.model_validate(table)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise BackendError(
            f"[agents.{name}] setting '{key}': {error['msg']}; fix it in the configuration."
        ) from None


class TranscriptCall(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    ok: bool | None = None
    output: str = ""


class TranscriptLine(BaseModel):
    """One turn as the external agent reports it; unknown keys are ignored so formats can grow."""

    content: str = ""
    tool_calls: list[TranscriptCall] = Field(default_factory=list)
    usage: Usage | None = None
    latency_s: float = 0.0


class ExternalAgent:
    """Runs one command per attempt; see the module docstring for the contract."""

    def __init__(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        model_url: str | None = None,
        model: str | None = None,
        visible: Sequence[Path] = (),
    ) -> None:
        self.command = command
        self.env = dict(env or {})
        self.model_url = model_url
        self.model = model
        self.visible = tuple(visible)  # read-only in its sandbox: where its program lives

    def run(self, task: AgentTask) -> Episode:
        folder = task.toolbox.workspace.base / "agent"  # beside the work tree, so never committed
        folder.mkdir(exist_ok=True)
        spec_file, transcript_file = folder / "spec.md", folder / "transcript.jsonl"
        spec_file.write_text(task.canary.spec.spec, encoding="utf-8")
        limits = dataclasses.replace(task.toolbox.limits, timeout_s=task.budget.seconds)
        workspace = task.toolbox.workspace
        # It commits and pushes itself, and talks to its model: .git, origin and the network are its.
        result = run_sandboxed(
            ["/bin/sh", "-c", f'exec 0<"$AGENTLOOP_SPEC_FILE"\n{self.command}'],
            workspace.root,
            limits,
            env={**self.env, **self._contract_env(task, spec_file, transcript_file)},
            writable=(workspace.root / ".git", workspace.origin, folder),
            visible=self.visible,
            network=True,
        )
        return _episode(task, result, transcript_file)

    def _contract_env(self, task: AgentTask, spec_file: Path, transcript_file: Path) -> dict[str, str]:
        env = {
            "AGENTLOOP_SPEC_FILE": str(spec_file),
            "AGENTLOOP_TRANSCRIPT": str(transcript_file),
            "AGENTLOOP_CANARY": task.canary.id,
            "AGENTLOOP_TEST_COMMAND": task.canary.spec.test_command,
            "AGENTLOOP_MAX_TURNS": str(task.budget.turns),
            "AGENTLOOP_MAX_TOKENS": str(task.budget.tokens),
            "AGENTLOOP_SECONDS": f"{task.budget.seconds:g}",
            "AGENTLOOP_MAX_RESPONSE_TOKENS": str(task.cell.settings.max_response_tokens),
        }
        if self.model_url is not None:
            env["AGENTLOOP_MODEL_URL"] = self.model_url
        if self.model is not None:
            env["AGENTLOOP_MODEL"] = self.model
        return env

    def fingerprint(self) -> dict[str, Any]:
        return {
            "agent": "external",
            "command": self.command,
            "model": self.model,
            "model_url": self.model_url,
        }


def _episode(task: AgentTask, result: SandboxResult, transcript_file: Path) -> Episode:
    """How the run ended (exit status, time limit) and what its transcript says, nothing invented."""
    lines, problem = read_transcript(transcript_file)
    transcript = Transcript(
        spec=task.canary.spec.spec, turns=[_turn(i, line) for i, line in enumerate(lines or [])]
    )
    counters = _counters(lines)
    unknown = UNSEEN + tuple(name for name in REPORTED if counters.get(name) is None)
    last = _last_line(result.output)
    note = f" ({problem})" if problem else ""
    episode = Episode(
        end="finished",
        transcript=transcript,
        unknown=unknown,  # these become null in the Attempt, whatever the 0s below say
        tool_calls=counters.get("tool_calls") or 0,
        prompt_tokens=counters.get("prompt_tokens") or 0,
        completion_tokens=counters.get("completion_tokens") or 0,
        model_s=sum(line.latency_s for line in lines or []),
    )
    if result.timed_out:
        episode.end, episode.limit = "budget_exceeded", Limit.TIME
        episode.reason = f"killed at the canary's time budget of {task.budget.seconds:g} s{note}"
    elif result.exit_code == ESCALATE_EXIT:
        episode.end, episode.reason = "escalated", last or "the agent escalated without a reason"
    elif (over := _over_budget(task, counters)) is not None:
        episode.end, episode.limit, episode.reason = "budget_exceeded", over[0], over[1] + note
    elif result.ok:
        episode.reason = (last or "the agent exited") + note
    else:
        why = result.killed or f"exit status {result.exit_code}"
        episode.reason = f"the agent stopped ({why}): {last or 'no output'}{note}"
    return episode


def read_transcript(path: Path) -> tuple[list[TranscriptLine] | None, str]:
    """The transcript's turns, or None with a note saying why it cannot be used."""
    if not path.is_file():
        return None, ""
    lines = []
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            lines.append(TranscriptLine.model_validate(json.loads(raw)))
        except (json.JSONDecodeError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            return None, f"transcript line {number} unreadable ({first}); its counters are null"
    return lines, ""


def _counters(lines: list[TranscriptLine] | None) -> dict[str, int | None]:
    if lines is None:
        return {}
    tokens_known = all(line.usage is not None for line in lines)
    usages = [line.usage for line in lines if line.usage is not None]
    return {
        "turns": len(lines),
        "tool_calls": sum(len(line.tool_calls) for line in lines),
        "prompt_tokens": sum(u.prompt_tokens for u in usages) if tokens_known else None,
        "completion_tokens": sum(u.completion_tokens for u in usages) if tokens_known else None,
    }


def _over_budget(task: AgentTask, counters: Mapping[str, int | None]) -> tuple[Limit, str] | None:
    """The harness cannot stop an external agent mid-turn, but it can see that it overspent."""
    turns = counters.get("turns")
    if turns is not None and turns > task.budget.turns:
        return Limit.TURNS, f"the agent reported {turns} turns, over the budget of {task.budget.turns}"
    prompt, completion = counters.get("prompt_tokens"), counters.get("completion_tokens")
    if prompt is not None and completion is not None and prompt + completion > task.budget.tokens:
        return Limit.TOKENS, (
            f"the agent reported {prompt + completion:,} tokens, over the budget of {task.budget.tokens:,}"
        )
    return None


def _turn(index: int, line: TranscriptLine) -> Turn:
    calls = [
        ToolCall(id=f"external_{index}_{n}", name=call.name, arguments=call.arguments)
        for n, call in enumerate(line.tool_calls)
    ]
    results = [
        ToolResult(call_id=made.id, name=call.name, ok=call.ok, output=call.output)
        for made, call in zip(calls, line.tool_calls, strict=True)
        if call.ok is not None
    ]
    return Turn(
        index=index,
        request_messages=0,
        request_chars=0,
        content=line.content,
        calls=calls,
        results=results,
        usage=line.usage or Usage(),
        latency_s=line.latency_s,
    )


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def make_external_agent(
    settings: ExternalAgentSettings, backend_for: Callable[[ModelSpec], Backend], root: Path
) -> ExternalAgent:
    """The agent for one `[agents.NAME]` table; its model (if any) is served by the usual backend."""
    env = {name: os.environ[name] for name in settings.pass_env if name in os.environ}
    env.update(settings.env, AGENTLOOP_ROOT=str(root))
    if settings.model is None:
        return ExternalAgent(settings.command, env=env, visible=(root,))
    spec = ModelSpec.parse(settings.model)
    url = getattr(backend_for(spec), "base_url", None)
    if url is None:
        raise BackendError(
            f"model {spec.raw} of an external agent has no HTTP endpoint to hand over; "
            "use an OpenAI-compatible backend (openai:, llamacpp:, embedded:, ...)"
        )
    return ExternalAgent(settings.command, env=env, model_url=str(url), model=spec.model, visible=(root,))
