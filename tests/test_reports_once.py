"""Reports that read once: one run of two canaries that both run out of turns the same way.

A real pytest run against the scripted model (loop_one_call: the same call until the turn budget
ends), with the terminal summary, cards, results file and pytest-html report all read back.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_agentloop.cli import main
from pytest_agentloop.results import document, journal_beside, read_journal
from tests._runs import IGNORE, run, tiny_suite
from tests.support.scripted_server import ScriptedServer


@pytest.fixture(scope="module")
def looped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    root = tmp_path_factory.mktemp("once")
    tiny_suite(root)
    with ScriptedServer("loop_one_call") as server:
        out = _run(
            root,
            "--agent-model=openai:scripted",
            f"--agent-host={server.url}",
            "--repeat=2",
            "--agent-no-smoke",
            "--agent-json=results.json",
            "--agent-cards=cards",
            "--agent-store=sqlite:///store.db",
            "--html=report.html",
            "--self-contained-html",
        )
    return root, out


def _run(root: Path, *args: str) -> str:
    """A pytest subprocess in `root` (pytester itself is function-scoped; this fixture is per module)."""
    command = [sys.executable, "-m", "pytest", "canaries", "-p", "no:cacheprovider", *IGNORE, *args]
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300).stdout


def test_a_repeated_diagnosis_is_said_once_with_the_canaries_it_covers(looped: tuple[Path, str]) -> None:
    _, out = looped
    summary = out.partition("agentloop summary")[2]
    lines = [line for line in summary.splitlines() if "incomplete sweep" in line]
    assert len(lines) == 1, lines  # each canary's verdict is the pooled one: its line names them
    assert (
        "openai:scripted · baseline · 2 over-budget canaries pooled (tiny, tiny2): incomplete sweep"
        in lines[0]
    )
    texts = [line.partition(": ")[2] for line in lines]
    assert len(texts) == len(set(texts)), lines  # no sentence twice


def test_failure_headers_name_the_repetition(looped: tuple[Path, str]) -> None:
    _, out = looped
    headers = re.findall(r"^_+ (canary .*?) _+$", out, re.MULTILINE)
    assert sorted(headers) == sorted(
        f"canary {c} · openai:scripted · baseline · repetition {r}" for c in ("tiny", "tiny2") for r in (1, 2)
    )


def test_regenerated_cards_equal_the_live_ones_host_lines_included(
    looped: tuple[Path, str], tmp_path: Path
) -> None:
    root, _ = looped
    assert main(["report", str(root / "results.json"), "--cards", str(tmp_path)]) == 0
    (live,) = (root / "cards").glob("*.md")
    again = tmp_path / live.name
    assert "- harness cpu: " in live.read_text() and "- harness ram: " in live.read_text()
    assert again.read_text() == live.read_text()


def test_cards_from_the_store_differ_only_where_a_transcript_is_needed(
    looped: tuple[Path, str], tmp_path: Path
) -> None:
    """docs/reports.md: the store keeps no transcripts, so its cards say so in the no-op and prose
    columns, and nothing else changes."""
    root, _ = looped
    assert main(["report", f"sqlite:///{root / 'store.db'}", "--cards", str(tmp_path)]) == 0
    (live,) = (root / "cards").glob("*.md")
    changed = [
        (a, b)
        for a, b in zip(
            live.read_text().splitlines(), (tmp_path / live.name).read_text().splitlines(), strict=True
        )
        if a != b
    ]
    assert len(changed) == 1, changed
    cells = changed[0][1].split(" | ")
    assert cells[-2:] == ["n/a (no transcripts)", "n/a (no transcripts) |"], changed


def test_the_html_report_opens_with_the_decision_and_links_the_view(looped: tuple[Path, str]) -> None:
    root, _ = looped
    page = (root / "report.html").read_text(encoding="utf-8")
    verdict = page.index("agentloop verdict")
    assert page.index("<b>Decision</b>", verdict) < page.index("<table", verdict)
    assert 'href="report.view.html"' in page and (root / "report.view.html").is_file()
    assert "System prompt (" in page  # each transcript shows what the model was told


def test_pseudo_agent_transcripts_carry_the_spec(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    run(pytester, "--agent-model=null", "--agent-json=r.json", "-k", "tiny2")
    transcripts = (pytester.path / "r.transcripts.jsonl").read_text()
    assert "calc.py defines add(a, b)" in transcripts


def test_the_results_file_is_the_whole_document_and_the_view_has_every_transcript(
    looped: tuple[Path, str],
) -> None:
    """The owner held its attempts without transcripts and streamed the results file: the file is still
    `json.dumps(document, indent=1)` of the run's journal, and the view beside the HTML report read every
    transcript back from disk."""
    root, _ = looped
    path = root / "results.json"
    run_info, attempts = read_journal(journal_beside(path))
    want = json.dumps(document(run_info, attempts), indent=1)
    assert _unstamped(path.read_text()) == _unstamped(want)
    view = (root / "report.view.html").read_text(encoding="utf-8")
    assert view.count('<script type="application/json" id="t') == len(attempts) == 4


def _unstamped(text: str) -> str:
    return re.sub(r'"updated": "[^"]*"', '"updated": ""', text, count=1)
