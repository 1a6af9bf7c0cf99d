"""Plugin behaviour through pytester: collection, ids, options, config precedence, errors, JSON."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree

import pytest

from pytest_agentloop.results import load_results
from tests.support.tiny_canary import write_tiny_canary

pytestmark = pytest.mark.usefixtures("tiny")


@pytest.fixture
def tiny(pytester: pytest.Pytester) -> Path:
    return write_tiny_canary(pytester.path / "canaries" / "tiny")


def test_items_expand_model_cell_repetition_with_readable_ids(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        "--collect-only", "-q", "--agent-model=reference", "--agent-model=null", "--repeat=2"
    )
    result.stdout.fnmatch_lines(
        [
            "canaries/tiny/canary.toml::tiny[[]reference-baseline-r1[]]",
            "canaries/tiny/canary.toml::tiny[[]reference-baseline-r2[]]",
            "canaries/tiny/canary.toml::tiny[[]null-baseline-r1[]]",
            "canaries/tiny/canary.toml::tiny[[]null-baseline-r2[]]",
        ]
    )
    assert result.ret == pytest.ExitCode.OK


def test_reference_passes_and_null_fails_with_a_diagnosis(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--agent-model=reference", "--agent-model=null")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*failed: declared done without pushing*"])
    assert "Traceback" not in result.stdout.str()


def test_k_selects_by_model_and_repetition(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--agent-model=reference", "--repeat=3", "-k", "r2")
    result.assert_outcomes(passed=1)


def test_command_line_wins_over_agentloop_toml(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", agentloop='models = ["null"]\nrepeat = 2\n')
    from_file = pytester.runpytest("--collect-only", "-q")
    from_file.stdout.fnmatch_lines(["*tiny[[]null-baseline-r2[]]", "2 tests collected*"])
    overridden = pytester.runpytest("--collect-only", "-q", "--repeat=3", "--agent-model=reference")
    overridden.stdout.fnmatch_lines(["*tiny[[]reference-baseline-r3[]]", "3 tests collected*"])


def test_pyproject_table_is_read_when_there_is_no_agentloop_toml(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml('[tool.agentloop]\nmodels = ["reference"]\nrepeat = 2\n')
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(["2 tests collected*"])


def test_one_settings_file_is_read_in_the_documented_order(pytester: pytest.Pytester) -> None:
    """docs/configuration.md: --agent-config's file (its [tool.agentloop] table, else its top level), else
    agentloop.toml, else [tool.agentloop] in pyproject.toml; only one is read, never merged."""
    pytester.makepyprojecttoml('[tool.agentloop]\nmodels = ["reference"]\nrepeat = 3\n')
    pytester.makefile(".toml", agentloop='models = ["null"]\nrepeat = 2\n')
    pytester.makefile(
        ".toml", other='[tool.agentloop]\nmodels = ["reference"]\n', flat='models = ["reference"]\n'
    )
    toml_first = pytester.runpytest("--collect-only", "-q")
    toml_first.stdout.fnmatch_lines(["*tiny[[]null-baseline-r2[]]", "2 tests collected*"])
    for name in ("other.toml", "flat.toml"):  # no repeat from agentloop.toml or pyproject.toml: not merged
        chosen = pytester.runpytest("--collect-only", "-q", f"--agent-config={name}")
        chosen.stdout.fnmatch_lines(["*tiny[[]reference-baseline-r1[]]", "1 test collected*"])


def test_unknown_setting_is_one_clear_line(pytester: pytest.Pytester) -> None:
    pytester.makefile(".toml", agentloop='models = ["null"]\nrepet = 2\n')
    result = pytester.runpytest("--collect-only")
    result.stderr.fnmatch_lines(["*agentloop.toml: unknown setting 'repet'; remove it or fix its spelling.*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_malformed_canary_names_file_and_field(pytester: pytest.Pytester, tiny: Path) -> None:
    tiny.write_text(tiny.read_text().replace('tier = "smoke"', 'tier = "easy"'))
    result = pytester.runpytest("--agent-model=null")
    output = result.stdout.str()
    assert "canaries/tiny/canary.toml: field 'tier'" in output
    assert "Traceback" not in output
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_unknown_backend_is_one_clear_line(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--collect-only", "--agent-model=nosuch:model")
    result.stderr.fnmatch_lines(["*unknown backend 'nosuch'*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_model_spec_without_backend_is_one_clear_line(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--collect-only", "--agent-model=qwen3")
    result.stderr.fnmatch_lines(["*model spec 'qwen3' is not BACKEND:MODEL*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_results_file_follows_the_schema(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--agent-model=reference", "--agent-model=null", "--agent-json=out/r.json")
    result.assert_outcomes(passed=1, failed=1)
    data = json.loads((pytester.path / "out" / "r.json").read_text())
    assert data["schema"] == "agentloop.results/1"
    assert {"started", "harness_version", "harness_commit"} <= data["run"].keys()
    attempts = {a["model"]: a for a in data["attempts"]}
    assert attempts["reference"]["outcome"] == "passed"
    assert attempts["null"]["outcome"] == "failed"
    required = {
        "canary", "tier", "model", "cell", "repetition", "outcome", "limit", "reason", "turns", "tool_calls",
        "malformed_tool_calls", "redundant_tool_calls", "text_tool_calls", "prompt_tokens",
        "completion_tokens", "wall_s", "model_s",
    }  # fmt: skip
    assert all(required <= a.keys() for a in data["attempts"])
    summary_keys = {
        "model", "cell", "canary", "passes", "n", "pass_rate", "ci_low", "ci_high", "mean_turns_to_pass",
        "budget_exceeded", "infra_errors", "diagnosis",
    }  # fmt: skip
    assert all(summary_keys <= row.keys() for row in data["summary"])
    transcripts = (pytester.path / "out" / "r.transcripts.jsonl").read_text().splitlines()
    assert len(transcripts) == 2
    # Read back for `agentloop report`, each attempt gets its own transcript again.
    _, loaded = load_results(pytester.path / "out" / "r.json", transcripts=True)
    assert all(a.transcript is not None for a in loaded)
    assert [a.transcript for a in load_results(pytester.path / "out" / "r.json")[1]] == [None, None]


def test_terminal_summary_shows_pass_rate_with_interval(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--agent-model=reference", "--repeat=3")
    result.stdout.fnmatch_lines(
        [
            "*agentloop summary*",
            "*pass^3*text/att*",
            "*reference*baseline*tiny*3/3*[[]0.44, 1.00[]]*100%*5.0*",
        ]
    )


def test_below_three_repetitions_is_flagged(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--agent-model=reference")
    result.stdout.fnmatch_lines(["note: every verdict here is below the methodology's minimum of N=3 (N=1)*"])


def test_xdist_workers_carry_attempts_to_the_controller(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        "-n", "2", "--agent-model=reference", "--agent-model=null", "--repeat=3", "--agent-json=r.json"
    )
    result.assert_outcomes(passed=3, failed=3)
    data = json.loads((pytester.path / "r.json").read_text())
    keys = sorted((a["model"], a["repetition"]) for a in data["attempts"])
    assert keys == sorted((m, r) for m in ("reference", "null") for r in (1, 2, 3))
    rows = {row["model"]: row for row in data["summary"]}
    assert (rows["reference"]["passes"], rows["reference"]["n"]) == (3, 3)
    assert (rows["null"]["passes"], rows["null"]["n"]) == (0, 3)


def test_last_failed_reruns_only_the_failed_attempts(pytester: pytest.Pytester) -> None:
    pytester.runpytest("--agent-model=reference", "--agent-model=null")
    rerun = pytester.runpytest("--agent-model=reference", "--agent-model=null", "--lf")
    rerun.stdout.fnmatch_lines(["*rerun previous 1 failure*"])
    rerun.assert_outcomes(failed=1)


def test_files_inside_a_canary_are_never_collected(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--collect-only", "-q", "--agent-model=null")
    assert "test_hidden" not in result.stdout.str()
    assert "test_calc" not in result.stdout.str()
    result.stdout.fnmatch_lines(["1 test collected*"])


def test_sessions_without_canaries_are_untouched(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = pytester.runpytest("test_plain.py")
    result.assert_outcomes(passed=1)
    assert "agentloop summary" not in result.stdout.str()


def test_junit_carries_each_attempts_outcome_as_properties(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-n", "2", "--agent-model=reference", "--agent-model=null", "--junitxml=j")
    result.assert_outcomes(passed=1, failed=1)

    cases = ElementTree.parse(pytester.path / "j").getroot().iter("testcase")
    properties = {
        case.get("name"): {p.get("name"): p.get("value") for p in case.iter("property")} for case in cases
    }
    assert properties["tiny[reference-baseline-r1]"]["agentloop_outcome"] == "passed"
    assert properties["tiny[null-baseline-r1]"]["agentloop_outcome"] == "failed"
    assert {"agentloop_turns", "agentloop_tokens", "agentloop_cost", "agentloop_limit"} <= set(
        properties["tiny[null-baseline-r1]"]
    )
