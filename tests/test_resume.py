"""Kill a run with SIGKILL halfway, resume it, and every attempt is stored exactly once: in the store,
and in the results file's journal, which the kill leaves behind and the resume continues."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from pytest_agentloop.results import load_results
from pytest_agentloop.store import open_store
from tests._runs import IGNORE, run, tiny_suite

REPEAT = 6
TOTAL = 2 * REPEAT  # two canaries, one model, one cell
KILL_AFTER = 3


def stored_count(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM agentloop_attempts").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_a_killed_run_resumes_where_it_stopped(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    db = pytester.path / "results.db"
    store = f"--agent-store=sqlite:///{db}"
    args = ["canaries", "-p", "no:cacheprovider", "-p", "no:benchmark", *IGNORE, "--agent-model=reference"]
    first = subprocess.Popen(
        [sys.executable, "-m", "pytest", *args, f"--repeat={REPEAT}", store, "--agent-json=r.json"],
        cwd=pytester.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(1200):  # bounded: at most 120 s
            if stored_count(db) >= KILL_AFTER or first.poll() is not None:
                break
            time.sleep(0.1)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    kept = stored_count(db)
    assert KILL_AFTER <= kept < TOTAL, "the run must be killed halfway"
    # The killed run's journal holds what it finished; `agentloop report` compacts it into the file.
    report = subprocess.run(
        [sys.executable, "-m", "pytest_agentloop.cli", "report", "r.json"],
        cwd=pytester.path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    _, compacted = load_results(pytester.path / "r.json")
    assert len(compacted) >= kept and f"compacted {len(compacted)} attempts" in report.stderr

    resumed = run(
        pytester,
        "--agent-model=reference",
        f"--repeat={REPEAT}",
        store,
        "--agent-resume",
        "-rs",
        "--agent-json=r.json",
    )
    assert resumed.ret == pytest.ExitCode.OK
    resumed.assert_outcomes(passed=TOTAL - kept, skipped=kept)
    resumed.stdout.fnmatch_lines(
        ["SKIPPED [[]*[]] canaries/tiny*/canary.toml:1: agentloop resume: already stored in run *"]
    )
    resumed.stdout.fnmatch_lines([f"*agentloop store: run * (resumed), {TOTAL} attempts in*"])
    # The verdict covers the whole run, not just the attempts this session ran.
    resumed.stdout.fnmatch_lines(
        [f"reference*baseline*tiny*{REPEAT}/{REPEAT}*", f"*tiny2*{REPEAT}/{REPEAT}*"]
    )

    _, in_file = load_results(pytester.path / "r.json")  # the results file holds the whole run too
    assert Counter(a.canary for a in in_file) == {"tiny": REPEAT, "tiny2": REPEAT}

    history = open_store(f"sqlite:///{db}")
    (only_run,) = history.runs()
    attempts = history.attempts(only_run["run_id"])
    history.close()
    once = Counter((a.canary, a.model, a.cell, a.repetition) for a in attempts)
    assert len(once) == TOTAL and set(once.values()) == {1}
    assert only_run["finished"] is not None  # the resumed session completed the run
