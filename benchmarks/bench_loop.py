"""Harness overhead per turn of the agent loop, as the history grows to 200 turns.

Harness time of a turn = the turn's wall time minus the time spent inside the backend's HTTP call,
i.e. from one reply's return to the next request's send: parsing, running the tool, feeding the
result back, recording the turn and building the next request. The model is the scripted loopback
server at zero latency, so nothing but the harness (and the tool) is measured. Target: <= 2 ms median
at 200 turns of history (a peer harness spends ~60 ms).

Run from the repository root: `python -m benchmarks.bench_loop [--turns 200]`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_agentloop.agent.base import AgentTask, Budget
from pytest_agentloop.agent.loop import LoopAgent
from pytest_agentloop.agent.tools import Toolbox
from pytest_agentloop.backends.base import ChatRequest, ChatResponse, ModelSpec
from pytest_agentloop.backends.openai import OpenAIBackend
from pytest_agentloop.canary import load_canary
from pytest_agentloop.cells import Cell
from pytest_agentloop.sandbox import SandboxLimits
from pytest_agentloop.workspace import Workspace
from tests.support.scripted_server import ScriptedServer
from tests.support.tiny_canary import write_tiny_canary


class TimedBackend:
    """The real backend, with the start and end of every chat call noted."""

    def __init__(self, backend: OpenAIBackend) -> None:
        self.backend = backend
        self.spec = backend.spec
        self.calls: list[tuple[float, float]] = []

    def chat(self, request: ChatRequest) -> ChatResponse:
        started = time.perf_counter()
        try:
            return self.backend.chat(request)
        finally:
            self.calls.append((started, time.perf_counter()))

    def fingerprint(self) -> dict[str, Any]:
        return self.backend.fingerprint()

    def close(self) -> None:
        self.backend.close()


def measure(turns: int) -> tuple[list[float], list[float]]:
    """Harness seconds between each reply and the next request, and seconds inside each HTTP call."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-loop-") as scratch,
        ScriptedServer("loop_one_call") as server,
    ):
        canary = load_canary(write_tiny_canary(Path(scratch) / "canary"))
        with Workspace.create(canary, parent=Path(scratch)) as workspace:
            backend = TimedBackend(OpenAIBackend(ModelSpec.parse("openai:scripted"), server.url))
            task = AgentTask(
                canary=canary,
                cell=Cell(id="baseline"),
                budget=Budget(turns=turns, tokens=10**12, seconds=3600.0),
                toolbox=Toolbox(workspace, canary.spec.test_command, SandboxLimits()),
            )
            try:
                episode = LoopAgent(backend).run(task)
            finally:
                backend.close()
    assert episode.turns == turns, f"the episode ended early: {episode.end} {episode.reason}"
    gaps = [nxt[0] - prev[1] for prev, nxt in zip(backend.calls, backend.calls[1:], strict=False)]
    return gaps, [end - start for start, end in backend.calls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=200)
    options = parser.parse_args()
    gaps, http = measure(options.turns)
    gaps_ms = [gap * 1000 for gap in gaps]
    last = gaps_ms[-50:]
    print(f"turns: {options.turns} (scripted loopback server, zero latency, read_file each turn)")
    print(f"harness ms/turn, all turns:    median {statistics.median(gaps_ms):.3f}  max {max(gaps_ms):.3f}")
    print(
        f"harness ms/turn, last 50:      median {statistics.median(last):.3f}  "
        f"p90 {statistics.quantiles(last, n=10)[-1]:.3f}  (target <= 2 ms; a peer harness: ~60 ms)"
    )
    print(
        f"inside the HTTP call, last 50: median {statistics.median(http[-50:]) * 1000:.3f} ms (not harness)"
    )


if __name__ == "__main__":
    main()
