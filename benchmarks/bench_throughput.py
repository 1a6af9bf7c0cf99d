"""Throughput against one embedded llama.cpp server: attempts per minute with -n 1 and -n 2, the server's
own token rate with one and two clients at once, and the main job's time beside a busy neighbour.

With `-n 2` both workers attach to one server (a slot each, threads from `server_threads`: the usable
cores less one for the harness and less those the load keeps busy), instead of two servers
oversubscribing the cores. The neighbour is a `yes > /dev/null` process on the same machine, as a CI
runner or a desktop would have. The load average is printed before and after: on a shared machine the
figures move with it.

Run from the repository root: `python -m benchmarks.bench_throughput [--repeat 1] [--tokens 64]
[--canaries canaries/smoke/fix-greeting-typo]` (the defaults take a few minutes on 2 idle cores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pytest_agentloop.backends.base import ChatRequest, ModelSpec
from pytest_agentloop.backends.embedded import EmbeddedBackend, server_threads, usable_cores

SPEC = ModelSpec.parse("embedded:smollm2-135m")
ROOT = Path(__file__).resolve().parent.parent


def token_rate(clients: int, tokens: int, threads: int | None = None) -> float:
    """Completion tokens per second the server produced for `clients` requests at once."""
    with tempfile.TemporaryDirectory() as shared:
        backends = [
            EmbeddedBackend(SPEC, n_ctx=1024, parallel=clients, shared_dir=Path(shared), threads=threads)
            for _ in range(clients)
        ]
        request = ChatRequest(
            messages=[{"role": "user", "content": "Count from one to one hundred in words."}],
            max_tokens=tokens, temperature=0.0, seed=1, timeout_s=600,
        )  # fmt: skip
        try:
            started = time.perf_counter()
            with ThreadPoolExecutor(clients) as pool:
                replies = list(pool.map(lambda backend: backend.chat(request), backends))
            elapsed = time.perf_counter() - started
        finally:
            for backend in backends:
                backend.close()
    return sum(reply.usage.completion_tokens or 0 for reply in replies) / elapsed


@dataclass(frozen=True)
class Job:
    """One pytest run: its wall time and what the attempts did (from its results file)."""

    seconds: float
    attempts: int
    turns: int
    completion_tokens: int

    def line(self) -> str:
        per_min = 60 / self.seconds
        return (
            f"{self.attempts * per_min:.1f} attempts/min, {self.turns * per_min:.1f} turns/min, "
            f"{self.completion_tokens / self.seconds:.1f} generated tok/s "
            f"({self.attempts} attempts, {self.turns} turns in {self.seconds:.0f} s)"
        )


def pytest_job(workers: int, repeat: int, canaries: str) -> Job:
    """The canaries with the embedded model through pytest, `-n workers`, timed from outside.

    The tiny model's attempts vary a lot in length (one ends at its first reply, the next uses every
    turn), so turns and generated tokens per second are printed beside attempts per minute."""
    with tempfile.TemporaryDirectory(prefix="bench-throughput-") as scratch:
        results = Path(scratch) / "results.json"
        command = [
            sys.executable, "-m", "pytest", canaries, "-q", "-p", "no:cacheprovider",
            "--agent-model=embedded:smollm2-135m", f"--repeat={repeat}", "--agent-no-smoke",
            f"--agent-json={results}",
            *(["-n", str(workers)] if workers > 1 else ["-p", "no:xdist"]),
        ]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=3600)
        elapsed = time.perf_counter() - started
        if not results.is_file():
            tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
            raise SystemExit(
                f"pytest -n {workers} wrote no results (exit {done.returncode}): {' | '.join(tail)}"
            )
        attempts = json.loads(results.read_text())["attempts"]
    return Job(
        elapsed,
        len(attempts),
        sum(a["turns"] or 0 for a in attempts),
        sum(a["completion_tokens"] or 0 for a in attempts),
    )


@contextmanager
def busy_neighbour() -> Iterator[None]:
    process = subprocess.Popen(["sh", "-c", "yes > /dev/null"])
    try:
        yield
    finally:
        process.kill()
        process.wait(timeout=10)


def load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="repetitions per canary in each pytest run")
    parser.add_argument("--tokens", type=int, default=64, help="completion tokens per token-rate request")
    parser.add_argument("--canaries", default="canaries/smoke", help="what each pytest run collects")
    options = parser.parse_args()
    cores = usable_cores()
    print(
        f"before: {load()}; usable cores {cores} (affinity and cgroup quota), "
        f"server threads now {server_threads()}"
    )
    one, two = token_rate(1, options.tokens), token_rate(2, options.tokens)
    print(f"server token rate: 1 client {one:.1f} tok/s, 2 clients at once {two:.1f} tok/s (together)")
    if cores > 1:
        every = token_rate(1, options.tokens, threads=cores)
        print(f"server token rate with a thread on every core ({cores}), 1 client: {every:.1f} tok/s")
    alone = pytest_job(1, options.repeat, options.canaries)
    print(f"pytest -n 1: {alone.line()}")
    print(f"pytest -n 2: {pytest_job(2, options.repeat, options.canaries).line()} (one shared server)")
    with busy_neighbour():
        beside = pytest_job(1, options.repeat, options.canaries)
    print(
        f"main job (-n 1): {alone.seconds:.0f} s alone ({alone.seconds / max(alone.turns, 1):.1f} s/turn), "
        f"{beside.seconds:.0f} s beside a busy neighbour, yes > /dev/null "
        f"({beside.seconds / max(beside.turns, 1):.1f} s/turn)"
    )
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
