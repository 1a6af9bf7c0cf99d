"""What the plugin costs a pytest session that has nothing to do with it: start-up with and without it.

Runs `pytest` in an empty folder with one trivial test, N times each way (`-p no:agentloop` turns the
installed plugin off), and prints the median wall time and the modules the session imported. The
plugin's promise: no pydantic and none of its heavy modules unless the session is about agentloop
(tests/test_import_cost.py asserts the module set; this prints the time).

With `--isolated`, pytest's plugin autoloading is off (PYTEST_DISABLE_PLUGIN_AUTOLOAD) and only this
plugin is loaded (`-p pytest_agentloop.plugin`): other installed plugins (hypothesis, trio, ...) can
cost a session far more than this one, and would hide its share.

Run from the repository root: `python -m benchmarks.bench_startup [--runs 7] [--isolated]`.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFTEST = """
import sys

def pytest_sessionfinish(session):
    heavy = [m for m in sys.modules if m.startswith("pydantic") or m.startswith("pytest_agentloop.")]
    print("\\nMODULES", len(heavy))
"""


def session_time(folder: Path, extra: list[str], isolated: bool = False) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the pytest process, heavy modules it imported)."""
    alone = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"} if isolated else {}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *extra],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **alone},
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    modules = next((line.split()[1] for line in done.stdout.splitlines() if line.startswith("MODULES")), "?")
    return elapsed, cpu, modules


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--isolated", action="store_true", help="no other installed pytest plugins")
    options = parser.parse_args()
    plugin = ["-p", "pytest_agentloop.plugin"] if options.isolated else []
    ways = {
        "without the plugin": [] if options.isolated else ["-p", "no:agentloop"],
        "with the plugin, no agentloop options": plugin,
        "with the plugin, an agentloop session": [*plugin, "--agent-model=reference"],
    }
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
        folder = Path(scratch)
        (folder / "conftest.py").write_text(CONFTEST)
        (folder / "test_plain.py").write_text("def test_plain():\n    assert True\n")
        session_time(folder, [], options.isolated)  # warm the file cache once
        others = "no other plugins" if options.isolated else "every installed plugin"
        print(
            f"pytest session start-up, one trivial test, {others}, median of {options.runs} runs "
            "(CPU: immune to load)"
        )
        for name, extra in ways.items():
            walls, cpus, modules = [], [], "?"
            for _ in range(options.runs):
                wall, cpu, modules = session_time(folder, extra, options.isolated)
                walls.append(wall)
                cpus.append(cpu)
            print(
                f"  {name:<40} CPU {statistics.median(cpus):.3f} s  wall {statistics.median(walls):.3f} s  "
                f"({modules} pydantic/pytest_agentloop.* modules imported)"
            )


if __name__ == "__main__":
    main()
