"""What grading costs per attempt: the clean export, the sandboxed checks with sentinels, the baseline.

Run from the repository root:
`python -m benchmarks.bench_grading [canary_dir] [-n 10]`. Replays the canary's reference
solution into fresh workspaces and times each step of grading; the baseline run (once per canary
and process) is timed apart. Prints figures; asserts nothing.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from benchmarks.support import canary_and_count, ms_figures
from pytest_agentloop.grading import _BASELINES, baseline, run_checks
from pytest_agentloop.grading_export import export_commit
from pytest_agentloop.sandbox import SandboxPolicy
from pytest_agentloop.workspace import Workspace


def main() -> None:
    canary, count = canary_and_count(__doc__, "heavy/provider-timeouts", 10)
    limits = SandboxPolicy().for_canary(canary)
    first_baseline, export, checks = [], [], []
    with tempfile.TemporaryDirectory(prefix="agentloop-bench-") as parent:
        for _ in range(count):
            with Workspace.create(canary, parent=Path(parent)) as workspace:
                for path in sorted(p for p in canary.solution_dir.rglob("*") if p.is_file()):
                    target = workspace.root / path.relative_to(canary.solution_dir)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(path.read_bytes())
                workspace.commit("reference")
                workspace.push()
                _BASELINES.clear()
                start = time.perf_counter()
                baseline(canary, workspace, limits)
                first_baseline.append(time.perf_counter() - start)
                start = time.perf_counter()
                with tempfile.TemporaryDirectory() as scratch:
                    export_commit(workspace.origin, workspace.pushed_head(), Path(scratch) / "tree")
                export.append(time.perf_counter() - start)
                start = time.perf_counter()
                run = run_checks(canary, workspace, limits)  # the baseline is cached from here on
                checks.append(time.perf_counter() - start)
                assert run.all_passed, run.summary
    print(f"canary {canary.id}: {run.checks} hidden checks + 4 sentinels, engine {limits.engine}")
    for label, seconds in (
        ("clean export", export),
        ("checks (export+run)", checks),
        ("baseline (once/canary)", first_baseline),
    ):
        print(f"{label:<22} {ms_figures(seconds)}")


if __name__ == "__main__":
    main()
