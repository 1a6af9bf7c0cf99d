"""What several benchmarks share: the scripted model server in a process of its own, and one way to
print a list of timings. Run the benchmarks from the repository root with `python -m benchmarks.NAME`.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pytest_agentloop.canary import Canary, load_canary

CANARIES = Path(__file__).resolve().parent.parent / "canaries"


def canary_and_count(doc: str | None, default: str, n: int) -> tuple[Canary, int]:
    """The command line `[canary_dir] [-n N]` of a benchmark that repeats a step on one canary: the
    canary (`default` is a folder under canaries/) and how many times."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("canary", nargs="?", type=Path, default=CANARIES / default)
    parser.add_argument("-n", type=int, default=n)
    args = parser.parse_args()
    return load_canary(args.canary / "canary.toml"), args.n


@contextmanager
def scripted_server_process(behaviour: str) -> Iterator[str]:
    """tests/support/scripted_server.py in a process of its own, as a real runtime is, so its work is
    not the harness's; yields its base URL (`.../v1`) once it listens, and stops it after."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "tests.support.scripted_server", "--behaviour", behaviour]
    process = subprocess.Popen([*command, "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline() if process.stdout else ""  # "serving ... at URL": it listens
        if "serving" not in line:
            raise RuntimeError(f"the scripted server did not start: {line!r}")
        yield line.split(" at ", 1)[1].split(" ", 1)[0]
    finally:
        process.terminate()
        process.wait(timeout=30)


def ms_figures(seconds: list[float]) -> str:
    """Timings as `n=…  median=…  p95=…  min=…  max=…` in milliseconds."""
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (
        f"n={len(ms)}  median={statistics.median(ms):7.1f} ms  p95={p95:7.1f} ms  "
        f"min={ms[0]:7.1f} ms  max={ms[-1]:7.1f} ms"
    )
