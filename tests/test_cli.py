"""The `agentloop` console script on results files and a real SQLite store (constructed attempts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_agentloop.cli import main
from pytest_agentloop.records import RESULTS_SCHEMA, Attempt
from pytest_agentloop.store import open_store
from tests._attempts import runs


def results_file(path: Path, attempts: list[Attempt]) -> Path:
    document = {
        "schema": RESULTS_SCHEMA,
        "run": {"started": "2026-05-01"},
        "attempts": [a.to_record() for a in attempts],
    }
    path.write_text(json.dumps(document))
    return path


def test_compare_two_runs_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = results_file(tmp_path / "a.json", runs("PPP", canary="x") + runs("PPF", canary="y"))
    b = results_file(tmp_path / "b.json", runs("FFF", canary="x") + runs("PFF", canary="y"))
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(" · m") and out[1].endswith(" · m")
    assert out[2] == "cell: baseline (same settings)"
    assert out[3].split() == ["canary", "A", "pass/N", "[95%", "CI]", "B", "pass/N", "[95%", "CI]"]
    assert out[4].startswith("x ") and "3/3 [0.44, 1.00]" in out[4] and "0/3 [0.00, 0.56]" in out[4]
    assert out[6].startswith("all ") and "5/6" in out[6] and "1/6" in out[6]
    assert out[7] == "serving stack: the same (nothing recorded)"
    assert out[8].startswith("B vs A (unpaired, on the canaries both ran): ")
    assert "B 1/6 vs A 5/6" in out[8] and "Boschloo exact" in out[8]


def test_compare_never_pools_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two models in each file: one comparison per model, never one over both; --model picks one."""
    a = runs("PPP", model="good") + runs("FFF", model="bad") + runs("PPP", model="old")
    b = runs("FFF", model="good") + runs("PPP", model="bad")
    a_file, b_file = results_file(tmp_path / "a.json", a), results_file(tmp_path / "b.json", b)
    assert main(["compare", str(a_file), str(b_file)]) == 0
    out = capsys.readouterr().out
    assert "B 3/3 vs A 0/3: better" in out and "B 0/3 vs A 3/3: worse" in out
    assert "6/6" not in out and "3/6" not in out
    assert "not compared (in one run only): old" in out
    assert main(["compare", str(a_file), str(b_file), "--model", "bad"]) == 0
    out = capsys.readouterr().out
    assert "B 3/3 vs A 0/3: better" in out and "worse" not in out
    assert main(["compare", str(a_file), str(b_file), "--model", "old"]) == 2
    assert "no attempt of model 'old'" in capsys.readouterr().err


def test_compare_pairs_within_one_cell_and_names_what_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only the chosen cell is paired (a probe must not pair with a baseline run), and a cell id that ran
    with other settings on the two sides says so: the comparison is then of two configs."""
    a = runs("FFF", cell_config={"turns": 6}) + runs("PPP", cell="turns=12", cell_config={"turns": 12})
    b = runs("FFP", cell_config={"turns": 12})
    a_file, b_file = results_file(tmp_path / "a.json", a), results_file(tmp_path / "b.json", b)
    assert main(["compare", str(a_file), str(b_file)]) == 0
    out = capsys.readouterr().out
    assert "cell: baseline (settings differ: turns 6 -> 12)" in out and "B 1/3 vs A 0/3" in out
    assert main(["compare", str(a_file), str(b_file), "--cell", "turns=12"]) == 2
    assert "has no attempt in cell 'turns=12'; its cells: baseline (choose one with --cell)" in (
        capsys.readouterr().err
    )


def test_compare_two_models_of_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = results_file(tmp_path / "r.json", runs("PPP", model="a") + runs("FFP", model="b"))
    assert main(["compare", str(source), "--models", "a", "b"]) == 0
    assert "3/3 [0.44, 1.00]        1/3" in capsys.readouterr().out
    assert main(["compare", str(source), "--models", "a", "zzz"]) == 2
    assert "no attempt of model 'zzz'" in capsys.readouterr().err


def test_history_lists_a_models_runs_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = open_store(url)
    for day, outcomes in (("01", "PPP"), ("02", "PPF"), ("03", "FFF")):
        run_id = store.begin_run(
            {"started": f"2026-05-{day}T00:00:00+00:00", "harness_version": "0.1.0"}, f"r{day}"
        )
        for attempt in runs(outcomes, model="ollama:q"):
            store.add(run_id, attempt)
    store.close()
    assert main(["history", "ollama:q", "--store", url]) == 0
    lines = capsys.readouterr().out.splitlines()[2:]
    assert [line.split()[1:3] for line in lines] == [["r01", "3/3"], ["r02", "2/3"], ["r03", "0/3"]]


def test_report_rebuilds_summary_and_html_from_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    store = open_store(url)
    run_id = store.begin_run({"started": "2026-05-01T00:00:00+00:00"})
    for attempt in runs("PPF"):
        store.add(run_id, attempt)
    store.close()
    html = tmp_path / "verdict.html"
    assert main(["report", f"{url}#{run_id}", "--html", str(html)]) == 0
    assert "2/3" in capsys.readouterr().out
    assert "<svg" in html.read_text() and "Pass rate per model × cell" in html.read_text()


def test_errors_are_one_line(tmp_path: Path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "pytest_agentloop.cli", "report", str(tmp_path / "nope.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1 and "not a readable results file" in missing.stderr


def test_a_reader_that_leaves_early_is_no_error(tmp_path: Path) -> None:
    """`agentloop report ... | head` may close the pipe before the report is written: exit 0, no traceback."""
    results = results_file(tmp_path / "r.json", runs("PPF"))
    report = subprocess.Popen(
        [sys.executable, "-m", "pytest_agentloop.cli", "report", str(results)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert report.stdout is not None and report.stderr is not None
    report.stdout.close()  # before the interpreter has even started: every write meets a closed pipe
    assert report.wait(timeout=60) == 0
    assert b"Traceback" not in report.stderr.read()


def test_report_merges_one_results_file_per_host(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A CI matrix with one job per GPU host writes one file each; `report a.json b.json` merges them."""
    a = results_file(tmp_path / "a.json", runs("PPF", model="ollama:a"))
    b = results_file(tmp_path / "b.json", runs("FFF", model="vllm:b"))
    assert main(["report", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "ollama:a" in out and "2/3" in out
    assert "vllm:b" in out and "0/3" in out


def test_report_counts_an_attempt_found_in_two_sources_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The docs once said report does not merge; it does, and it once counted an attempt held by two
    sources (a shard's file and the shared store) twice. Two different runs of one thing are refused."""
    attempts = runs("PPF", model="ollama:a", started="2026-05-01T10:00:00")
    a = results_file(tmp_path / "a.json", attempts)
    copy = results_file(tmp_path / "copy.json", attempts)
    assert main(["report", str(a), str(copy)]) == 0
    out = capsys.readouterr().out
    assert "2/3" in out and "4/6" not in out
    rerun = results_file(
        tmp_path / "rerun.json", runs("PPF", model="ollama:a", started="2026-05-08T10:00:00")
    )
    assert main(["report", str(a), str(rerun)]) == 2
    assert "they are two runs, not parts of one" in capsys.readouterr().err


def test_report_prices_from_the_runs_settings_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cost per pass after the fact: `--config` names the file whose [prices] the run used."""
    attempts = runs("PF", model="openai:x", prompt_tokens=500_000, completion_tokens=0)
    source = results_file(tmp_path / "r.json", attempts)
    config = tmp_path / "agentloop.toml"
    config.write_text('[prices."openai:x"]\ninput = 2.0\noutput = 8.0\n')
    assert main(["report", str(source), "--config", str(config), "--cards", str(tmp_path / "cards")]) == 0
    assert "$2.0000/pass" in capsys.readouterr().out  # $1 an attempt, 2 attempts, 1 pass
    assert "- $2.0000 per pass ($2.0000 for 1/2 passes)" in (tmp_path / "cards" / "openai_x.md").read_text()


def test_report_with_a_missing_settings_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = results_file(tmp_path / "r.json", runs("P"))
    assert main(["report", str(source), "--config", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: no such config file" in capsys.readouterr().err
