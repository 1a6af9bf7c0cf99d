"""The smoke gate: one cheap attempt per model before its matrix, so a broken model costs minutes, not hours.

A model that makes no usable tool call on the smoke canary (or cannot be reached) would fail every
other item in that tool-call mode the same way. The gate runs that attempt once per model and mode
per run, whichever process gets there first: the verdict and the attempt itself live in a JSON file
under the run-shared directory, written under a file lock, so every xdist worker reads the same
verdict and the smoke item reuses the gate's attempt instead of running it twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import filelock

from pytest_agentloop.records import Attempt, Outcome
from pytest_agentloop.scheduling import GateKey

GATE_WAIT_S = 3600.0  # the gate attempt of a slow model on a busy host; bounded all the same


@dataclass(frozen=True)
class SmokeResult:
    """What the gate saw: the verdict, and the figures that make a model's first minutes legible."""

    model: str
    tool_mode: str
    canary: str
    ok: bool
    reason: str
    outcome: str  # the smoke attempt's own outcome: the gate asks only for usable calls, not a pass
    load_s: float | None
    first_token_s: float | None
    resident_bytes: int | None

    def line(self) -> str:
        """One summary line, e.g. for the terminal."""
        figures = [
            f"load {self.load_s:.1f}s" if self.load_s is not None else "load -",
            f"first reply {self.first_token_s:.2f}s" if self.first_token_s is not None else "first reply -",
            f"resident {self.resident_bytes / 2**20:.0f} MiB" if self.resident_bytes else "resident -",
        ]
        verdict = f"pass ({self.reason}; the attempt {self.outcome})" if self.ok else f"FAIL ({self.reason})"
        return f"{self.model} ({self.tool_mode}): smoke {self.canary} {verdict}; {', '.join(figures)}"


def _judge(attempt: Attempt, tool_mode: str) -> tuple[bool, str]:
    """Usable means the model reached the runtime and made at least one well-formed tool call.

    An external agent that writes no transcript has an unknown count (None): only its outcome judges it.
    """
    if attempt.outcome is Outcome.INFRA_ERROR:  # the server or the harness, never the model's verdict
        return False, f"infra error on the smoke canary (not the model's fault): {attempt.reason}"
    if attempt.tool_calls == 0 or attempt.outcome is Outcome.NO_TOOL_CALLS:
        return False, (
            f"no usable tool call on the smoke canary {attempt.canary} in {tool_mode} mode "
            f"({attempt.outcome.value})"
        )
    return True, "usable tool calls"


def smoke_result(attempt: Attempt) -> SmokeResult:
    tool_mode = str(attempt.cell_config.get("tool_mode", "native"))
    ok, reason = _judge(attempt, tool_mode)
    info = attempt.model_info
    turns = attempt.transcript.turns if attempt.transcript else []
    return SmokeResult(
        model=attempt.model,
        tool_mode=tool_mode,
        canary=attempt.canary,
        ok=ok,
        reason=reason,
        outcome=attempt.outcome.value,
        load_s=info.get("load_s"),
        first_token_s=turns[0].latency_s if turns else None,
        resident_bytes=info.get("resident_bytes"),
    )


class SmokeGate:
    """Runs (or reads) the gate of each model and tool mode; one file each under `root`."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "agentloop-smoke"
        self.dir.mkdir(parents=True, exist_ok=True)

    def _path(self, key: GateKey) -> Path:
        model, tool_mode = key
        return self.dir / (re.sub(r"[^A-Za-z0-9.]+", "-", model).strip("-")[:80] + f".{tool_mode}.json")

    def run_once(self, key: GateKey, attempt: Callable[[], Attempt]) -> tuple[SmokeResult, Attempt]:
        """The gate's verdict and attempt; `attempt` is called only by the first process to ask."""
        path = self._path(key)
        with filelock.FileLock(str(path.with_suffix(".lock")), timeout=GATE_WAIT_S):
            if path.exists():
                data = json.loads(path.read_text())
                return SmokeResult(**data["result"]), Attempt.from_record(data["attempt"])
            ran = attempt()
            result = smoke_result(ran)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(
                json.dumps({"result": asdict(result), "attempt": ran.to_record(with_transcript=True)})
            )
            tmp.replace(path)
            return result, ran

    def results(self) -> list[SmokeResult]:
        """Every gate run so far in this run (for the summary), in the order of their file names."""
        found: list[SmokeResult] = []
        for path in sorted(self.dir.glob("*.json")):
            data: dict[str, Any] = json.loads(path.read_text())
            found.append(SmokeResult(**data["result"]))
        return found
