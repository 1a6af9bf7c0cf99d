"""Provisioning cost per workspace (target: median <= 50 ms), and the cost of grading's clean checkout.

Run: `python benchmarks/bench_workspace.py [canary_dir] [-n 30]`. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pytest_agentloop.canary import load_canary
from pytest_agentloop.workspace import Workspace

DEFAULT = Path(__file__).resolve().parent.parent / "canaries" / "smoke" / "fix-greeting-typo"


def _summary(label: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    median = statistics.median(ms)
    return f"{label:<16} n={len(ms)}  median={median:6.1f} ms  p95={p95:6.1f} ms  max={ms[-1]:6.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("canary", nargs="?", type=Path, default=DEFAULT)
    parser.add_argument("-n", type=int, default=30)
    args = parser.parse_args()
    canary = load_canary(args.canary / "canary.toml")
    provision: list[float] = []
    checkout: list[float] = []
    with tempfile.TemporaryDirectory(prefix="agentloop-bench-") as parent:
        for i in range(args.n):
            start = time.perf_counter()
            workspace = Workspace.create(canary, parent=Path(parent))
            provision.append(time.perf_counter() - start)
            start = time.perf_counter()
            workspace.checkout_pushed(Path(parent) / f"checkout-{i}")
            checkout.append(time.perf_counter() - start)
            workspace.remove()
    print(f"canary: {canary.id} ({sum(1 for p in canary.repo_dir.rglob('*') if p.is_file())} files)")
    print(_summary("provision", provision))
    print(_summary("checkout_pushed", checkout))


if __name__ == "__main__":
    main()
