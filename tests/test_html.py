"""The pytest-html report of a real run under xdist, read back from the JSON pytest-html embeds."""

from __future__ import annotations

import html
import json
import re
import subprocess
import sys

import pytest

from pytest_agentloop.records import MalformedCall, ToolCall, ToolResult, Transcript, Turn
from pytest_agentloop.report.html import RESULT_LIMIT, transcript_html
from tests._attempts import attempt
from tests._runs import IGNORE, run, tiny_suite
from tests.support.scripted_server import ScriptedServer


def embedded_data(page: str) -> dict[str, object]:
    match = re.search(r'id="data-container" data-jsonblob="([^"]*)"', page)
    assert match, "pytest-html's data container is missing"
    return json.loads(html.unescape(match.group(1)))


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One run shared by the checks below: the run takes seconds, the checks take none."""
    root = tmp_path_factory.mktemp("html")
    tiny_suite(root)
    # With a store, the verdict merges this session's attempts (with transcripts) and the stored ones.
    args = ["--agent-model=reference", "--agent-model=null", "--repeat=2", "-n", "2", "--agent-store"]
    command = [sys.executable, "-m", "pytest", "canaries", "-p", "no:cacheprovider", *IGNORE, *args]
    result = subprocess.run(
        [*command, "--html=report.html", "--self-contained-html"], cwd=root, capture_output=True, timeout=300
    )
    assert result.returncode == pytest.ExitCode.TESTS_FAILED  # null never passes, and there are no gates
    return (root / "report.html").read_text(encoding="utf-8")


def test_every_item_row_carries_the_sortable_columns(report: str) -> None:
    tests = embedded_data(report)["tests"]
    assert isinstance(tests, dict) and len(tests) == 8
    rows = [entry[0] for entry in tests.values()]
    assert {(r["model"], r["cell"], r["repetition"]) for r in rows} == {
        (m, "baseline", rep) for m in ("reference", "null") for rep in ("1", "2")
    } and len(rows) == 8
    assert {r["outcome"] for r in rows if r["model"] == "reference"} == {"passed"}
    assert {r["outcome"] for r in rows if r["model"] == "null"} == {"failed"}
    for key in ("model", "cell", "repetition", "outcome", "turns"):
        assert f'<th class="sortable" data-column-type="{key}">' in report


def test_a_skipped_item_still_names_its_model_and_cell(pytester: pytest.Pytester) -> None:
    """The smoke gate skips tiny2: no attempt, yet its row must say which model and cell it was."""
    tiny_suite(pytester.path)
    with ScriptedServer("never_calls") as server:
        result = run(pytester, "--agent-model=openai:scripted", f"--agent-host={server.url}", "--html=r.html")
    result.assert_outcomes(failed=1, skipped=1)
    rows = [entry[0] for entry in embedded_data((pytester.path / "r.html").read_text())["tests"].values()]
    (skipped,) = [r for r in rows if r["result"] == "Skipped"]
    assert (skipped["model"], skipped["cell"], skipped["repetition"]) == ("openai:scripted", "baseline", "1")


def test_every_item_has_its_transcript_as_an_extra(report: str) -> None:
    tests = embedded_data(report)["tests"]
    assert isinstance(tests, dict)
    for entry in tests.values():
        (extra,) = entry[0]["extras"]
        assert extra["format_type"] == "html"
        for heading in ("<h4>Spec</h4>", "<h4>Final diff</h4>", "<h4>Hidden checks</h4>", "<h4>Turn 1"):
            assert heading in extra["content"]
    reference = next(e[0] for e in tests.values() if e[0]["model"] == "reference")
    assert (
        "→ " in reference["extras"][0]["content"] and "+    return a + b" in reference["extras"][0]["content"]
    )


def test_the_report_opens_with_the_verdict_tables_and_charts(report: str) -> None:
    verdict = report[report.index("agentloop verdict") : report.index("Per canary")]
    assert re.search(
        r"<td>reference</td><td>baseline</td><td class=num>4/4</td><td>0\.51–1\.00</td>", verdict
    )
    assert re.search(r"<td>null</td><td>baseline</td><td class=num>0/4</td>", verdict)
    assert verdict.count("<svg") == 2
    assert "Pass rate per model × cell" in verdict and "Wasted-turn profile per model" in verdict


def test_without_pytest_html_everything_else_works(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    result = run(pytester, "--agent-model=reference", "-p", "no:html", "--agent-gate=all:pass_rate>=1")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*agentloop gates: 0 unmet of 1*"])


def test_transcript_truncates_long_results_and_shows_errors_fed_back() -> None:
    turn = Turn(
        index=0,
        request_messages=2,
        request_chars=10,
        calls=[ToolCall(id="c1", name="read_file", arguments={"path": "big.txt"})],
        results=[ToolResult(call_id="c1", name="read_file", ok=True, output="x" * (RESULT_LIMIT + 500))],
        malformed=[MalformedCall(kind="bad_json", raw="{oops", error="Expecting property name")],
    )
    transcript = Transcript(spec="Fix <add>", turns=[turn], final_diff="", check_output="1 passed")
    page = transcript_html(attempt("failed", reason="checks failed"), transcript)
    assert "Fix &lt;add&gt;" in page
    assert '→ read_file({"path": "big.txt"})' in page.replace("&quot;", '"')
    assert "… 500 more characters truncated" in page
    assert "bad_json: Expecting property name" in page and "fed back to the model" in page
