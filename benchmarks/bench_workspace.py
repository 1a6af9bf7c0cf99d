"""Provisioning cost per workspace (target: median <= 50 ms), and the cost of grading's clean checkout.

Run from the repository root:
`python -m benchmarks.bench_workspace [canary_dir] [-n 30]`. Prints figures; asserts nothing.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.support import canary_and_count, ms_figures
from pytest_agentloop.workspace import Workspace


def main() -> None:
    canary, count = canary_and_count(__doc__, "smoke/fix-greeting-typo", 30)
    provision: list[float] = []
    checkout: list[float] = []
    with tempfile.TemporaryDirectory(prefix="agentloop-bench-") as parent:
        for i in range(count):
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
