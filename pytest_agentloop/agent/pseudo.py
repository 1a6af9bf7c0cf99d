"""Pseudo-agents of known behaviour, to check the harness and the canaries without a model.

`reference` must pass every canary (a canary its own solution cannot pass is broken); `null` must
fail every one (a canary that passes untouched checks nothing). Both act through the same Toolbox as
a model, so their transcripts and counters are read exactly like a model's.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pytest_agentloop.agent import prompts
from pytest_agentloop.agent.base import AgentTask, Episode
from pytest_agentloop.records import ToolCall, Transcript, Turn

_SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".git"}


class ReferenceAgent:
    """Lays the overlay (default: the canary's solution/) over the repo, tests, commits, pushes, finishes.

    A trap canary (expect.outcome == "escalate") is answered with an escalation and its reason.
    """

    def __init__(self, overlay: Path | None = None) -> None:
        self.overlay = overlay

    def run(self, task: AgentTask) -> Episode:
        spec = task.canary.spec
        if spec.expect.outcome == "escalate":
            return _replay(task, [("escalate", {"reason": spec.reference.reason})])
        overlay = self.overlay or task.canary.solution_dir
        writes = [
            ("write_file", {"path": path, "content": content}) for path, content in _overlay_files(overlay)
        ]
        steps = [
            *writes,
            ("run_tests", {}),
            ("commit", {"message": "Apply the reference solution"}),
            ("push", {}),
            ("finish", {"summary": f"Replayed {len(writes)} files from {overlay.name}/"}),
        ]
        return _replay(task, steps)


class NullAgent:
    """Does nothing and declares success at once."""

    def run(self, task: AgentTask) -> Episode:
        return _replay(task, [("finish", {"summary": "Did nothing."})])


def _overlay_files(overlay: Path) -> list[tuple[str, str]]:
    if not overlay.is_dir():
        return []
    return [
        (path.relative_to(overlay).as_posix(), path.read_text(encoding="utf-8"))
        for path in sorted(overlay.rglob("*"))
        if path.is_file() and not _SKIPPED_PARTS.intersection(path.relative_to(overlay).parts)
    ]


def _replay(task: AgentTask, steps: Iterable[tuple[str, dict[str, Any]]]) -> Episode:
    """One turn per call, stopping at finish/escalate; the episode ends as the toolbox says.

    The transcript carries the spec a model would have been given (no system prompt: no model), so a
    reader of a reference or null transcript sees what the task was.
    """
    toolbox = task.toolbox
    transcript = Transcript(spec=prompts.task_message(task.canary))
    redundant = 0
    for index, (name, arguments) in enumerate(steps):
        call = ToolCall(id=f"pseudo_{index}", name=name, arguments=arguments)
        result = toolbox.execute(call)
        redundant += result.redundant
        transcript.turns.append(
            Turn(index=index, request_messages=0, request_chars=0, calls=[call], results=[result])
        )
        if toolbox.ended:
            break
    return Episode(
        end=toolbox.ended or "finished",
        transcript=transcript,
        reason=toolbox.end_message,
        tool_calls=len(transcript.turns),
        redundant_tool_calls=redundant,
    )
