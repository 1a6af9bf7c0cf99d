"""Run identity is explicit: xdist workers get it from the controller, CI shards share it, resume names it.

The store cases run on SQLite and, with AGENTLOOP_TEST_POSTGRES set, on a real PostgreSQL server
(as a GitHub Actions matrix would share one): see tests/test_store.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from contextlib import closing
from pathlib import Path

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
    with closing(open_store(store_url)) as store:
        assert [r["run_id"] for r in store.runs()] == ["ci-42"]
        assert Counter(a.canary for a in store.attempts("ci-42")) == {"tiny": REPEAT, "tiny2": REPEAT}
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
    with closing(open_store(url)) as store:
        assert Counter(a.canary for a in store.attempts("r1")) == {"tiny": 1, "tiny2": 1}
        assert store.attempts("intruder") == []


def test_bare_resume_never_joins_an_open_run_with_other_settings(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    url = f"sqlite:///{pytester.path / 'h.db'}"
    store = open_store(url)
    store.begin_run({"started": "2099-01-01T00:00:00+00:00", "settings_key": "other"}, run_id="live-ci-job")
    store.close()
    result = run(pytester, "--agent-model=reference", f"--agent-store={url}", "--agent-resume")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["agentloop: no unfinished run with these settings in *; starting run *"])
    with closing(open_store(url)) as store:
        assert store.attempts("live-ci-job") == []


def test_resume_of_an_unknown_run_is_one_line(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    url = f"sqlite:///{pytester.path / 'h.db'}"
    result = run(
        pytester, "--agent-model=reference", f"--agent-store={url}", "--agent-resume", "--agent-run-id=nope"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: agentloop: --agent-resume: * holds no run 'nope'*"])


def test_the_github_actions_shard_example_runs_as_written(pytester: pytest.Pytester) -> None:
    """examples/github-actions-shards.yml: its shard and report commands, run here through bash with the
    model swapped for `reference` and the secret store for a SQLite file; every shard at once."""
    root = Path(__file__).resolve().parent.parent
    text = (root / "examples" / "github-actions-shards.yml").read_text(encoding="utf-8")
    shutil.copytree(root / "canaries", pytester.path / "canaries")
    selects = json.loads(re.search(r"select: (\[.*\])", text).group(1))  # type: ignore[union-attr]
    shard_command = _folded_run(text, "Run this shard of the run")
    shard_command = re.sub(r"--agent-model=\S+ --agent-host=\S+", "--agent-model=reference", shard_command)
    shard_command = shard_command.replace("--repeat=3", "--repeat=1").replace("-n 2", "-p no:cacheprovider")
    env = {**os.environ, "RUN_ID": "gh-1-1", "AGENTLOOP_STORE_URL": f"sqlite:///{pytester.path / 's.db'}"}
    shards = []
    for index, select in enumerate(selects):
        folder = pytester.path / f"job{index}"  # each job has its own checkout and results.json
        folder.mkdir()
        (folder / "canaries").symlink_to(pytester.path / "canaries")
        command = shard_command.replace("${{ matrix.select }}", select)
        shards.append(
            subprocess.Popen(["bash", "-c", command], cwd=folder, env=env, stdout=subprocess.PIPE, text=True)
        )
    for process in shards:
        out, _ = process.communicate(timeout=900)
        assert process.returncode == 0, out
    report = _folded_run(text, "The whole run, every shard, each attempt once", folded=False)
    done = subprocess.run(
        ["bash", "-c", report], cwd=pytester.path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    with closing(open_store(env["AGENTLOOP_STORE_URL"])) as store:
        stored = store.attempts("gh-1-1")
    canaries = {path.parent.name for path in (root / "canaries").glob("*/*/canary.toml")}
    assert Counter(a.canary for a in stored) == dict.fromkeys(
        canaries, 1
    )  # every canary once, no shard twice
    assert (pytester.path / "run.html").is_file() and list((pytester.path / "cards").glob("*.md"))


def _folded_run(text: str, step: str, *, folded: bool = True) -> str:
    """The `run:` of the step named `step`: a folded block (`run: >`) joined as YAML would, or one line."""
    after = text[text.index(f"name: {step}") :]
    if not folded:
        return re.search(r"run: (.+)", after).group(1)  # type: ignore[union-attr]
    block = after[after.index("run: >") + len("run: >") :].splitlines()[1:]
    lines = []
    for line in block:
        if not line.startswith(" " * 10):
            break
        lines.append(line.strip())
    return " ".join(lines)
