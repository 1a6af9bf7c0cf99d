"""The whole agent-loop turn, as the history grows to 200 turns, with the model server in its own process.

The scripted loopback server (zero latency) runs as a separate process, as a real runtime would, so
everything this process spends on a turn is the harness's: building and JSON-encoding the request
(the whole history, every turn), the HTTP client, parsing the reply, running the tool, recording the
turn. Printed per turn: this process's CPU time (what the harness costs, whatever else the machine
runs), and the wall time split into outside the HTTP call and inside it (which includes the server).
Target: <= 2 ms of harness CPU per turn at 200 turns of history (a peer harness spends ~60 ms).

Run from the repository root: `python -m benchmarks.bench_loop [--turns 200]`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.support import scripted_server_process
from pytest_agentloop.agent.base import AgentTask, AttemptBudget
from pytest_agentloop.agent.loop import LoopAgent
from pytest_agentloop.agent.tools import Toolbox
from pytest_agentloop.backends.base import ChatRequest, ChatResponse, ModelSpec
from pytest_agentloop.backends.openai import OpenAIBackend
from pytest_agentloop.canary import load_canary
from pytest_agentloop.cells import Cell
from pytest_agentloop.sandbox import SandboxPolicy
from pytest_agentloop.workspace import Workspace
from tests.support.tiny_canary import write_tiny_canary


class TimedBackend:
    """The real backend, with the start and end of every chat call noted."""

    def __init__(self, backend: OpenAIBackend) -> None:
        self.backend = backend
        self.spec = backend.spec
        self.calls: list[tuple[float, float]] = []
        self.cpu: list[float] = []  # this process's CPU time as each reply returned

    def chat(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        try:
            return self.backend.chat(request)
        finally:
            self.calls.append((started, time.perf_counter()))
            self.cpu.append(time.process_time())

    def fingerprint(self) -> dict[str, Any]:
        return self.backend.fingerprint()

    def close(self) -> None:
        self.backend.close()


def measure(turns: int) -> tuple[list[float], list[float], list[float], list[int]]:
    """Per turn: this process's CPU seconds, wall seconds outside the HTTP call, seconds inside it, and
    the characters of history the request carried."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-loop-") as scratch,
        scripted_server_process("loop_one_call") as url,
    ):
        canary = load_canary(write_tiny_canary(Path(scratch) / "canary"))
        with Workspace.create(canary, parent=Path(scratch)) as workspace:
            backend = TimedBackend(OpenAIBackend(ModelSpec.parse("openai:scripted"), url))
            task = AgentTask(
                canary=canary,
                cell=Cell(id="baseline"),
                budget=AttemptBudget(turns=turns, tokens=10**12, seconds=3600.0),
                toolbox=Toolbox(workspace, canary.spec.test_command, SandboxPolicy()),
            )
            try:
                episode = LoopAgent(backend).run(task)
            finally:
                backend.close()
    assert episode.turns == turns, f"the episode ended early: {episode.end} {episode.reason}"
    cpu = [after - before for before, after in zip(backend.cpu, backend.cpu[1:], strict=False)]
    gaps = [nxt[0] - prev[1] for prev, nxt in zip(backend.calls, backend.calls[1:], strict=False)]
    sent = [turn.request_chars for turn in episode.transcript.turns]
    return cpu, gaps, [end - start for start, end in backend.calls[1:]], sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    options = parser.parse_args()
    cpu, gaps, http, sent = measure(options.turns)
    ms = lambda values: [value * 1000 for value in values]  # noqa: E731
    print(f"turns: {options.turns} (scripted server in its own process, zero latency, read_file each turn)")
    for name, values in (
        ("harness CPU", ms(cpu)),
        ("wall outside HTTP", ms(gaps)),
        ("wall inside HTTP", ms(http)),
    ):
        last = values[-50:]
        print(
            f"{name + ' ms/turn':<26} first 50 median {statistics.median(values[:50]):.3f}  "
            f"last 50 median {statistics.median(last):.3f}  p90 {statistics.quantiles(last, n=10)[-1]:.3f}"
        )
    print(
        f"history sent (the whole history, encoded every turn): {sent[0]:,} characters at turn 1, "
        f"{sent[len(sent) // 2]:,} at turn {len(sent) // 2 + 1}, {sent[-1]:,} at turn {len(sent)}"
    )
    print("target: harness CPU <= 2 ms/turn at 200 turns of history (a peer harness: ~60 ms)")


if __name__ == "__main__":
    main()
