"""Two real runs against the scripted model, into one store: the material of the viewer's tests.

Run 1 solves both tiny canaries (a diff, hidden checks passed); run 2 sends broken JSON until the
turn budget ends (malformed calls, budget_exceeded), which the store flags as a regression.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests._runs import IGNORE, tiny_suite
from tests.support.scripted_server import ScriptedServer
from tests.support.tiny_canary import FILES

REPEAT = 4  # 0/4 after 4/4 per tier: the fewest runs an exact test can call a regression


@dataclass(frozen=True)
class TwoRuns:
    root: Path
    solved: Path  # results file of run 1
    broken: Path  # results file of run 2
    store: str
    report: Path  # run 2's pytest-html report (and its view page beside it)


def _run(root: Path, behaviour: str, json_name: str, store: str, *more: str) -> None:
    with ScriptedServer(behaviour, edits=[("calc.py", FILES["solution/calc.py"])]) as server:
        args = [
            "--agent-model=openai:scripted",
            f"--agent-host={server.url}",
            f"--repeat={REPEAT}",
            "--agent-no-smoke",
            f"--agent-json={json_name}",
            f"--agent-store={store}",
            *more,
        ]
        command = [sys.executable, "-m", "pytest", "canaries", "-p", "no:cacheprovider", *IGNORE, *args]
        done = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]


def two_runs(root: Path) -> TwoRuns:
    tiny_suite(root)
    store = f"sqlite:///{root / 'history.db'}"
    _run(root, "solve", "solved.json", store)
    _run(root, "broken_json", "broken.json", store, "--html=broken.html")
    return TwoRuns(root, root / "solved.json", root / "broken.json", store, root / "broken.html")
