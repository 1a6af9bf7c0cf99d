"""Run identity is explicit: xdist workers get it from the controller, CI shards share it, resume names it.

The store cases run on SQLite and, with AGENTLOOP_TEST_POSTGRES set, on a real PostgreSQL server
(as a GitHub Actions matrix would share one): see tests/test_store.py.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections import Counter

import pytest

from pytest_agentloop.store import open_store

with contextlib.suppress(ImportError):  # now, before pytester snapshots sys.modules: psycopg's C part
    import psycopg  # noqa: F401  keeps its first error classes; a re-import would raise uncatchable ones
from tests._runs import IGNORE, run, tiny_suite
from tests.test_store import store_url  # noqa: F401  (the sqlite / postgresql fixture)

REPEAT = 3


def shard(pytester: pytest.Pytester, url: str, *args: str) -> subprocess.Popen[str]:
    """One CI shard: its own pytest process, as a matrix job would start it."""
    command = [sys.executable, "-m", "pytest", "canaries", "-p", "no:cacheprovider", "-p", "no:benchmark"]
    return subprocess.Popen(
        [*command, *IGNORE, "--agent-model=reference", f"--repeat={REPEAT}", f"--agent-store={url}", *args],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_shards_sharing_a_run_id_make_one_run(pytester: pytest.Pytester, store_url: str) -> None:  # noqa: F811
    tiny_suite(pytester.path)
    shards = [
        shard(pytester, store_url, "--agent-run-id=ci-42", "-k", "tiny2", "--agent-json=a.json"),
        shard(pytester, store_url, "--agent-run-id=ci-42", "-k", "not tiny2", "--agent-json=b.json"),
    ]
    for process in shards:  # at the same time, as matrix jobs run
        out, _ = process.communicate(timeout=300)
        assert process.returncode == 0, out
        assert "agentloop run: ci-42" in out
    store = open_store(store_url)
    try:
        assert [r["run_id"] for r in store.runs()] == ["ci-42"]
        assert Counter(a.canary for a in store.attempts("ci-42")) == {"tiny": REPEAT, "tiny2": REPEAT}
    finally:
        store.close()
    # The store's run and the shards' own files, together: each attempt counted once.
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_agentloop.cli",
            "report",
            "a.json",
            "b.json",
            store_url,
            "--run",
            "ci-42",
        ],
        cwd=pytester.path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    rows = [line for line in report.stdout.splitlines() if line.startswith("reference")]
    assert any(" tiny2 " in row and f"{REPEAT}/{REPEAT}" in row for row in rows), report.stdout
    assert any(" tiny " in row and f"{REPEAT}/{REPEAT}" in row for row in rows), report.stdout
    assert f"{4 * REPEAT}/{4 * REPEAT}" not in report.stdout  # both canaries pooled, counted once


def test_xdist_workers_resume_the_run_the_controller_names(pytester: pytest.Pytester) -> None:
    """Workers skip what run `r1` holds: they got its id through workerinput, not from the store."""
    tiny_suite(pytester.path)
    url = f"sqlite:///{pytester.path / 'h.db'}"
    first = run(
        pytester, "--agent-model=reference", f"--agent-store={url}", "--agent-run-id=r1", "-k", "tiny2"
    )
    assert first.ret == pytest.ExitCode.OK
    # Another run, left open with other settings, is newer: a guess by recency would pick it.
    store = open_store(url)
    store.begin_run({"started": "2099-01-01T00:00:00+00:00", "settings_key": "other"}, run_id="intruder")
    store.close()
    resumed = run(
        pytester, "-n", "2", "--agent-model=reference", f"--agent-store={url}", "--agent-run-id=r1",
        "--agent-resume", "-rs",
    )  # fmt: skip
    assert resumed.ret == pytest.ExitCode.OK
    resumed.assert_outcomes(passed=1, skipped=1)
    resumed.stdout.fnmatch_lines(["*agentloop resume: already stored in run r1*"])
    store = open_store(url)
    try:
        assert Counter(a.canary for a in store.attempts("r1")) == {"tiny": 1, "tiny2": 1}
        assert store.attempts("intruder") == []
    finally:
        store.close()


def test_bare_resume_never_joins_an_open_run_with_other_settings(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    url = f"sqlite:///{pytester.path / 'h.db'}"
    store = open_store(url)
    store.begin_run({"started": "2099-01-01T00:00:00+00:00", "settings_key": "other"}, run_id="live-ci-job")
    store.close()
    result = run(pytester, "--agent-model=reference", f"--agent-store={url}", "--agent-resume")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["agentloop: no unfinished run with these settings in *; starting run *"])
    store = open_store(url)
    try:
        assert store.attempts("live-ci-job") == []
    finally:
        store.close()


def test_resume_of_an_unknown_run_is_one_line(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    url = f"sqlite:///{pytester.path / 'h.db'}"
    result = run(
        pytester, "--agent-model=reference", f"--agent-store={url}", "--agent-resume", "--agent-run-id=nope"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: agentloop: --agent-resume: * holds no run 'nope'*"])
