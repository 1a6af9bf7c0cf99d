"""Provisioning cost per workspace (target: median <= 50 ms), and the cost of grading's clean checkout.

Run from the repository root:
`python -m benchmarks.bench_workspace [canary_dir] [-n 30]`. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.support import ms_figures
from pytest_agentloop.canary import load_canary
from pytest_agentloop.workspace import Workspace

DEFAULT = Path(__file__).resolve().parent.parent / "canaries" / "smoke" / "fix-greeting-typo"


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
    print(f"{'provision':<16} {ms_figures(provision)}")
    print(f"{'checkout_pushed':<16} {ms_figures(checkout)}")


if __name__ == "__main__":
    main()
