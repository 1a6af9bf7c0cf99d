"""`agentloop view` without a browser: what the file holds, that it needs nothing outside itself, the CLI.

The material is two real runs against the scripted model into one store (tests/_view_runs.py); what a
person sees when clicking through it is tests/test_view_browser.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_agentloop.cli import main
from pytest_agentloop.records import ToolCall, ToolResult, Transcript, Turn
from pytest_agentloop.report.view import render_view
from tests._attempts import attempt
from tests._view_runs import REPEAT, TwoRuns, two_runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> TwoRuns:
    return two_runs(tmp_path_factory.mktemp("view"))


def page_data(page: str) -> dict[str, object]:
    match = re.search(r"const DATA = (.*?);</script>", page, re.DOTALL)
    assert match, "the page's data block is missing"
    return json.loads(match.group(1))


def test_the_page_needs_nothing_outside_itself(runs: TwoRuns, tmp_path: Path) -> None:
    """No script, style, image or font from anywhere: the file opens from file:// with no network."""
    out = tmp_path / "v.html"
    assert main(["view", str(runs.broken), "-o", str(out), "--store", runs.store]) == 0
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and "url(" not in page
    assert "<script src" not in page and "<link" not in page


def test_the_page_holds_the_run_and_one_lazy_block_per_transcript(runs: TwoRuns, tmp_path: Path) -> None:
    out = tmp_path / "v.html"
    main(["view", str(runs.solved), "-o", str(out)])
    page = out.read_text(encoding="utf-8")
    data = page_data(page)
    assert {(row[2], row[4], row[5]) for row in data["summary"]} == {
        ("tiny", REPEAT, REPEAT),
        ("tiny2", REPEAT, REPEAT),
    }  # type: ignore[union-attr]
    assert len(data["attempts"]) == 2 * REPEAT  # type: ignore[arg-type]
    assert data["decision"] and "openai:scripted" in data["decision"][0]  # type: ignore[index]
    blocks = re.findall(r'<script type="application/json" id="t(\d+)">(.*?)</script>', page, re.DOTALL)
    assert sorted(int(i) for i, _ in blocks) == list(range(2 * REPEAT))
    transcript = json.loads(blocks[0][1])
    assert "calc.py defines add" in transcript["spec"] and transcript["system_prompt"]
    assert "+    return a + b" in transcript["final_diff"]
    assert data["history"] is None  # a results file alone has no history


def test_a_closing_script_tag_in_a_tool_result_cannot_end_its_block() -> None:
    """A model can write anything, `</script>` included; the block must still parse as JSON."""
    hostile = "</script><script>alert(1)</script>"
    turn = Turn(
        index=0,
        request_messages=2,
        request_chars=10,
        content=hostile,
        calls=[ToolCall(id="c", name="read_file", arguments={"path": hostile})],
        results=[ToolResult(call_id="c", name="read_file", ok=False, output=hostile)],
    )
    page = render_view([attempt("failed", transcript=Transcript(spec=hostile, turns=[turn]))], {}, hostile)
    assert page.count("</script>") == page.count("<script")  # every close tag is one of ours
    block = re.search(r'<script type="application/json" id="t0">(.*?)</script>', page, re.DOTALL)
    assert block and json.loads(block.group(1))["turns"][0]["results"][0]["output"] == hostile
    assert page_data(page)["label"] == hostile


def test_from_the_store_each_run_is_in_the_history_and_the_regression_is_marked(
    runs: TwoRuns, tmp_path: Path
) -> None:
    out = tmp_path / "v.html"
    assert main(["view", runs.store, "-o", str(out)]) == 0
    history = page_data(out.read_text(encoding="utf-8"))["history"]
    assert isinstance(history, dict)
    first, second = history["runs"]
    assert first["models"]["openai:scripted"][:2] == [8, 8] and first["regressions"] == []
    assert second["models"]["openai:scripted"][:2] == [0, 8]
    assert {r[2] for r in second["regressions"]} == {"tier smoke", "tier lite"}


def test_merging_a_source_with_itself_counts_each_attempt_once(runs: TwoRuns, tmp_path: Path) -> None:
    out = tmp_path / "v.html"
    assert main(["view", str(runs.solved), str(runs.solved), "-o", str(out)]) == 0
    assert len(page_data(out.read_text(encoding="utf-8"))["attempts"]) == 2 * REPEAT  # type: ignore[arg-type]


def test_two_runs_of_the_same_attempts_are_refused_in_one_line(
    runs: TwoRuns, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(runs.solved), str(runs.broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "two runs" in err and "agentloop compare" in err


def test_a_missing_source_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(tmp_path / "nope.json"), "-o", str(tmp_path / "v.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agentloop view: error:") and "nope.json" in err and len(err.splitlines()) == 1
