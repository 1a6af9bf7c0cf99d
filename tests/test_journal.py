"""The results journal: one appended line per attempt, compacted at the end, one live run per path."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import filelock
import pytest

from pytest_agentloop.analysis.cost import Price, attempt_cost
from pytest_agentloop.analysis.diagnosis import waste_profiles
from pytest_agentloop.records import Attempt, MalformedCall, ToolCall, ToolResult, Transcript, Turn, Usage
from pytest_agentloop.report.view import render_view, view_data
from pytest_agentloop.results import (
    Results,
    ResultsError,
    compact_journal,
    document,
    journal_beside,
    load_results,
    read_journal,
    transcripts_beside,
    write_results,
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


def _wasteful(repetition: int, cached: int) -> Attempt:
    """An attempt whose transcript holds each kind of wasted turn, text calls and cached tokens."""

    def turn(index: int, **fields: Any) -> Turn:
        return Turn(index=index, request_messages=1, request_chars=1, **fields)

    def edit(call_id: str, source: Literal["native", "text"] = "native", **result: bool) -> dict[str, Any]:
        call = ToolCall(id=call_id, name="edit_file", source=source)
        return {
            "calls": [call],
            "results": [ToolResult(call_id=call_id, name="edit_file", ok=True, output="x" * 500, **result)],
        }

    turns = [
        turn(0, **edit("a", changed=True), usage=Usage(prompt_tokens=900, cached_tokens=cached)),
        turn(1, malformed=[MalformedCall(kind="bad_json", raw="{", error="eof")]),
        turn(2, **edit("b", redundant=True)),
        turn(3, **edit("c")),  # an edit that changed nothing
        turn(4, content="thinking aloud"),  # prose, not the last turn
        turn(5, **edit("d", source="text", changed=True)),  # a text call the runtime did not parse
        turn(6, content="done"),
    ]
    return attempt(
        "failed", repetition=repetition, turns=7, tool_calls=4, prompt_tokens=900, completion_tokens=70,
        transcript=Transcript(system_prompt="s" * 2000, turns=turns),
    )  # fmt: skip


@pytest.mark.parametrize("journaled", [True, False])
def test_the_owner_keeps_transcripts_on_disk_and_reports_read_the_same(
    tmp_path: Path, journaled: bool
) -> None:
    """The owner holds attempts without transcripts (they were most of its 3.2 GB at 100,000 attempts);
    the waste profile, the cost with cached tokens, the view and the results file come out as from the
    full attempts, and each transcript reads back whole, the latest of a replaced attempt."""
    full = [_wasteful(1, cached=300), _wasteful(2, cached=0), attempt("passed", repetition=3)]
    results = Results({"run_id": "a"}, tmp_path / "r.json" if journaled else None)
    results.add(_wasteful(1, cached=5))  # replaced by the next one with its identity
    for one in full:
        results.add(one)
    held = results.attempts
    assert [a.transcript for a in held] == [None, None, None]
    assert [results.transcript_of(a) for a in held] == [a.transcript for a in full]
    assert waste_profiles(held) == waste_profiles(full)
    price = Price(input=1.0, output=2.0, cached_input=0.1)
    assert [attempt_cost(a, price) for a in held] == [attempt_cost(a, price) for a in full]
    assert view_data(held, {}, "x")["has_transcript"] == [True, True, False]
    page = render_view(held, {}, "x", transcript_of=results.transcript_of)
    assert page.count('<script type="application/json" id="t') == 2 and "thinking aloud" in page
    assert _normalized(json.dumps(document({}, held), indent=1)) == _normalized(
        json.dumps(document({}, full), indent=1)
    )
    results.close()


def _normalized(text: str) -> str:
    return re.sub(r'"updated": "[^"]*"', '"updated": ""', text)


@pytest.mark.parametrize("count", [0, 1, 5])
def test_the_results_file_is_the_document_byte_for_byte(tmp_path: Path, count: int) -> None:
    """write_results streams one record at a time; the file is what `json.dumps(document, indent=1)`
    wrote when the whole document was built in memory (nested lists, empty dicts, newlines in text)."""
    run_info = {"run_id": "r", "argv": ["-k", "a\nb"], "empty": {}, "nested": {"list": [[], {"k": []}]}}
    made = [
        attempt("failed", repetition=i, reason="line\none", model_info={"props": {"a": [], "b": {}}})
        for i in range(count)
    ]
    path = tmp_path / "r.json"
    write_results(path, run_info, made)
    assert _normalized(path.read_text()) == _normalized(json.dumps(document(run_info, made), indent=1))


def test_a_session_keeps_no_transcript_in_memory_once_reported(pytester: pytest.Pytester) -> None:
    """pytest keeps every report (and item) until the session ends: after the report has been seen by
    every plugin, neither holds the transcript any more; it is on disk with the owner."""
    tiny_suite(pytester.path)
    pytester.makeconftest(
        """
        def pytest_terminal_summary(terminalreporter):
            reports = [r for kind in terminalreporter.stats.values() for r in kind]
            records = [r.agentloop_attempt for r in reports if hasattr(r, "agentloop_attempt")]
            items = [i.attempt for i in terminalreporter._session.items if getattr(i, "attempt", None)]
            held = sum("transcript" in r for r in records) + sum(a.transcript is not None for a in items)
            print(f"RECORDS {len(records)} ITEMS {len(items)} HELD {held}")
        """
    )
    result = run(pytester, "--agent-model=reference", "--agent-json=r.json", "--repeat=2")
    result.stdout.fnmatch_lines(["RECORDS 4 ITEMS 4 HELD 0"])
    lines = transcripts_beside(pytester.path / "r.json").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["transcript"]["turns"] for line in lines)
