"""What bubblewrap isolation costs: per run_tests call, and to start a sandbox for an attempt.

Run from the repository root:
`python -m benchmarks.bench_sandbox [canary_dir] [-n 20]`. Prints figures; asserts nothing.

- probe: the one-time check that bwrap can run here (once per process, before the first attempt);
- start-up: an empty command (`true`) in the sandbox, bwrap vs none: the fixed cost each sandboxed
  command (each run_tests call, each grading run) pays for its namespaces and mounts;
- run_tests: the canary's own test command through the agent's tool, bwrap vs none, interleaved
  so load drifts hit both alike; the median of the paired differences is the added cost per call.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.support import canary_and_count, ms_figures
from pytest_agentloop import isolation
from pytest_agentloop.agent.tools import Toolbox
from pytest_agentloop.records import ToolCall
from pytest_agentloop.sandbox import Engine, SandboxPolicy, run_sandboxed
from pytest_agentloop.workspace import Workspace

ENGINES: tuple[Engine, ...] = ("none", "bwrap")


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    canary, count = canary_and_count(__doc__, "smoke/fix-greeting-typo", 20)

    probe = _timed(isolation._bwrap_problem)  # uncached: the first call in this process
    print(f"probe (once per process):       {probe * 1000:7.1f} ms")

    empty: dict[str, list[float]] = {engine: [] for engine in ENGINES}
    tests: dict[str, list[float]] = {engine: [] for engine in ENGINES}
    with tempfile.TemporaryDirectory(prefix="agentloop-bench-") as parent:
        workspace = Workspace.create(canary, parent=Path(parent))
        boxes = {
            engine: Toolbox(workspace, canary.spec.test_command, SandboxPolicy(engine=engine))
            for engine in ENGINES
        }
        call = ToolCall(id="bench", name="run_tests")
        for _ in range(count):
            for engine in ENGINES:
                limits, box = SandboxPolicy(engine=engine), boxes[engine]
                empty[engine].append(_timed(lambda lim=limits: run_sandboxed(["true"], workspace.root, lim)))
                tests[engine].append(_timed(lambda b=box: b.execute(call)))
        workspace.remove()

    print(f"canary: {canary.id}, test command `{canary.spec.test_command}`, n={count} per engine")
    for label, runs in (("empty command", empty), ("run_tests call", tests)):
        for engine in ENGINES:
            print(f"{label:<15} {engine:<6} {ms_figures(runs[engine])}")
        # Paired: each bwrap run against the none run just before it, so load drift cancels out.
        added = statistics.median(b - n for b, n in zip(runs["bwrap"], runs["none"], strict=True))
        share = added / statistics.median(runs["none"])
        print(f"{label:<15} added by bwrap: {added * 1000:+7.1f} ms per call ({share:+.0%}, median of pairs)")


if __name__ == "__main__":
    main()
