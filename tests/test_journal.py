"""The results journal: one appended line per attempt, compacted at the end, one live run per path."""

from __future__ import annotations

import json
from pathlib import Path

import filelock
import pytest

from pytest_agentloop.results import (
    Results,
    ResultsError,
    compact_journal,
    journal_beside,
    load_results,
    read_journal,
    transcripts_beside,
)
from tests._attempts import attempt, runs
from tests._runs import run, tiny_suite


def test_each_attempt_is_one_appended_line_and_the_file_is_written_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    results = Results({"run_id": "a"}, path)
    for one in runs("PPF"):
        results.add(one)
    assert not path.exists()  # nothing rewritten per attempt
    assert len(journal_beside(path).read_text().splitlines()) == 1 + 3  # header + one line each
    results.compact()
    results.close()
    _, attempts = load_results(path)
    assert [a.outcome.value for a in attempts] == ["passed", "passed", "failed"]


def test_a_second_live_run_on_the_same_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    first = Results({"run_id": "a"}, path)
    first.add(attempt())
    with pytest.raises(ResultsError, match="being written by another running session"):
        Results({"run_id": "b"}, path)
    assert len(read_journal(journal_beside(path))[1]) == 1  # the refused run touched nothing
    first.close()
    Results({"run_id": "b"}, path).close()  # free again once the first is done


def test_the_same_run_continues_its_journal(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    first = Results({"run_id": "a"}, path)
    first.add(attempt(repetition=1))
    first.close()  # as a kill would leave it: journal only
    again = Results({"run_id": "a"}, path)
    again.add(attempt(repetition=2))
    again.add(attempt("failed", repetition=2))  # a retried attempt replaces its earlier record
    again.compact()
    again.close()
    _, attempts = load_results(path)
    assert [(a.repetition, a.outcome.value) for a in attempts] == [(1, "passed"), (2, "failed")]


def test_a_line_cut_short_by_a_kill_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    results = Results({"run_id": "a"}, path)
    results.add(attempt(repetition=1))
    results.close()
    with journal_beside(path).open("a") as journal:
        journal.write('{"attempt": {"canary": "c1", "tier"')  # killed mid-write
    assert compact_journal(path) == 1
    assert compact_journal(path) is None  # already up to date
    assert json.loads(path.read_text())["run"]["attempt_count"] == 1


def test_a_pytest_session_refuses_a_path_another_run_holds(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    with filelock.FileLock(str(pytester.path / "r.json.lock"), timeout=0):
        result = run(pytester, "--agent-model=reference", "--agent-json=r.json")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: agentloop: *r.json is being written by another running session*"])
    assert not transcripts_beside(pytester.path / "r.json").exists()
