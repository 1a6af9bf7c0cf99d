"""Controller cost per attempt as a run grows: 100, 1,000, 10,000 and 100,000 attempts.

What the controller does for each attempt that reaches it: rebuild the record from the report, hand it
to the run's owner (`Results.add`: one journal line, one transcript line, the writers behind it), as
`session.RunOwner` does. The results file is compacted once, at the end (timed separately). Before
the journal, every attempt rewrote the whole file: 50 ms per attempt at 100, 2.45 s at 10,000.

Memory: each size runs in a process of its own, which prints its resident size once the run holds
every attempt (and per attempt, above the process's size before the run) and its peak, compaction
included. The owner keeps attempts without their transcripts (those are on disk), so both stay flat
per attempt; holding transcripts in memory cost about 3.2 GB at 100,000 attempts.

Run from the repository root: `python -m benchmarks.bench_results [--sizes 100 1000 10000 100000]`.
With `--store`, each attempt is also written to a SQLite store behind the owner, as `--agent-store` does.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pytest_agentloop.records import Attempt, Outcome, ToolCall, ToolResult, Transcript, Turn
from pytest_agentloop.results import Results
from pytest_agentloop.store import open_store

TAIL = 1000  # per-attempt cost is the mean over the last this many attempts of the run


def record(index: int) -> dict[str, Any]:
    """A realistic attempt as it arrives on a report: a 6-turn transcript, a varied identity."""
    turns = [
        Turn(
            index=i,
            request_messages=2 + 2 * i,
            request_chars=1500 + 900 * i,
            content="Reading the file first.",
            calls=[ToolCall(id=f"c{i}", name="read_file", arguments={"path": "src/calc.py"})],
            results=[ToolResult(call_id=f"c{i}", name="read_file", ok=True, output="def add(a, b):\n" * 20)],
            latency_s=0.8,
        )
        for i in range(6)
    ]
    attempt = Attempt(
        canary=f"canary-{index % 40}",
        tier="lite",
        model=f"ollama:model-{index % 3}",
        cell=f"cell-{(index // 40) % 10}",
        repetition=index // 1200 + 1,
        outcome=Outcome.PASSED if index % 3 else Outcome.FAILED,
        turns=6,
        tool_calls=6,
        prompt_tokens=6000,
        completion_tokens=360,
        wall_s=12.0,
        model_s=10.0,
        transcript=Transcript(turns=turns),
    )
    return attempt.to_record(with_transcript=True)


def resident_mib() -> float:
    """This process's resident size now (not its peak)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def run(size: int, store: bool, scratch: Path) -> tuple[float, float, float, float, float]:
    """(mean CPU ms per attempt over the run's last TAIL attempts, seconds to compact at the end,
    MiB resident before the run, MiB resident holding every attempt, peak MiB).

    CPU time of this process, not wall time: the machine may be shared, and other load is not our cost.
    """
    path = scratch / f"r{size}.json"
    before = resident_mib()
    results = Results({"run_id": f"bench-{size}"}, path)
    history = open_store(f"sqlite:///{scratch / f'h{size}.db'}") if store else None
    if history is not None:
        run_id = history.begin_run({}, run_id=f"bench-{size}")
        results.subscribe(lambda attempt: history.add(run_id, attempt))
    rows = [record(i) for i in range(min(size, TAIL))]  # built up front: not the controller's work
    tail_started = 0.0
    for index in range(size):
        if index == size - min(size, TAIL):
            tail_started = time.process_time()
        row = rows[index % len(rows)]
        row = {**row, "repetition": index // len(rows) + 1}  # a new identity each time
        results.add(Attempt.from_record(row))
    per_attempt_ms = (time.process_time() - tail_started) / min(size, TAIL) * 1000
    holding = resident_mib()
    started = time.perf_counter()
    results.compact()
    compact_s = time.perf_counter() - started
    results.close()
    if history is not None:
        history.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return per_attempt_ms, compact_s, before, holding, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10_000, 100_000])
    parser.add_argument("--store", action="store_true", help="also write each attempt to a SQLite store")
    options = parser.parse_args()
    store = " with a SQLite store" if options.store else ""
    print(f"controller CPU per attempt (mean of the run's last {TAIL} attempts){store}")
    print(
        f"{'attempts':>9}  {'ms/attempt':>10}  {'compact at end':>14}  {'RSS holding all':>15}  "
        f"{'KB/attempt':>10}  {'peak RSS':>9}"
    )
    fork = multiprocessing.get_context("fork")
    with tempfile.TemporaryDirectory(prefix="bench-results-") as scratch:
        for size in options.sizes:
            with ProcessPoolExecutor(1, mp_context=fork) as alone:  # a fresh process: its own peak
                per_attempt, compact, before, holding, peak = alone.submit(
                    run, size, options.store, Path(scratch)
                ).result()
            each = (holding - before) * 1024 / size
            print(
                f"{size:>9,}  {per_attempt:>10.3f}  {compact:>13.2f}s  {holding:>11.0f} MiB  "
                f"{each:>10.1f}  {peak:>5.0f} MiB"
            )


if __name__ == "__main__":
    main()
