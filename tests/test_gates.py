"""Gates: parsing, evaluation on constructed attempts, and the exit status of a real run."""

from __future__ import annotations

import math

import pytest

from pytest_agentloop.analysis.cost import Price
from pytest_agentloop.gates import GateError, evaluate, parse_gate
from tests._attempts import runs
from tests._runs import run, tiny_suite


def test_parse_reads_scope_metric_operator_and_threshold() -> None:
    gate = parse_gate(" lite : pass_rate >= 0.9 ")
    assert (gate.scope, gate.metric, gate.op, gate.threshold) == ("lite", "pass_rate", ">=", 0.9)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("lite pass_rate>=0.9", "not readable"),
        ("lite:speed>=1", "unknown metric 'speed'"),
        ("lite:pass_rate>=high", "'high' is not a number"),
        ("lite:pass_rate=>0.9", "not readable"),
    ],
)
def test_bad_gates_say_how_to_write_one(text: str, says: str) -> None:
    with pytest.raises(GateError, match=says) as error:
        parse_gate(text)
    assert "SCOPE:METRIC OP NUMBER" in str(error.value)


def test_each_model_and_cell_must_meet_the_gate() -> None:
    attempts = runs("PPPF", model="a") + runs("PFFF", model="b") + runs("FFFF", model="a", tier="heavy")
    results = evaluate([parse_gate("lite:pass_rate>=0.7")], attempts, {})
    assert [(r.model, r.met) for r in results] == [("a", True), ("b", False)]
    assert "pass_rate=0.25 (1/4 passed)" in results[1].describe()


def test_scope_selects_a_canary_and_all_selects_everything() -> None:
    attempts = runs("PP", canary="x") + runs("FF", canary="y")
    (by_canary,) = evaluate([parse_gate("x:passes>=2")], attempts, {})
    (everything,) = evaluate([parse_gate("all:ci_low>0.5")], attempts, {})
    assert by_canary.met and not everything.met


def test_a_gate_nothing_matches_is_unmet() -> None:
    (result,) = evaluate([parse_gate("heavy:pass_rate>=0.5")], runs("PP"), {})
    assert not result.met and "no attempt matched scope 'heavy'" in result.detail


def test_cost_per_pass_uses_the_prices_and_says_when_there_is_none() -> None:
    attempts = runs("PF", model="m", model_s=1800.0)  # 1 hour of model time, 1 pass
    gate = parse_gate("all:cost_per_pass<=2")
    (priced,) = evaluate([gate], attempts, {"m": Price(hourly=1.5)})
    (unpriced,) = evaluate([gate], attempts, {})
    assert priced.met and math.isclose(priced.value or 0, 1.5)
    assert not unpriced.met and "no price configured" in unpriced.detail


def test_infra_errors_are_not_counted() -> None:
    (result,) = evaluate([parse_gate("all:n>=3")], runs("PPI"), {})
    assert not result.met and result.value == 2


def test_gates_decide_the_exit_status_and_name_unmet_gates(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    both = ("--agent-model=reference", "--agent-model=null")
    plain = run(pytester, *both)
    assert plain.ret == pytest.ExitCode.TESTS_FAILED  # without gates: pytest's usual status
    lenient = run(pytester, *both, "--agent-gate=smoke:pass_rate>=0", "--agent-gate=all:n>=1")
    assert lenient.ret == pytest.ExitCode.OK  # canary failures alone no longer fail the run
    lenient.stdout.fnmatch_lines(["*agentloop gates: 0 unmet of 4*"])
    strict = run(pytester, *both, "--agent-gate=lite:pass_rate>=0.5")
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines(["*UNMET  lite:pass_rate>=0.5  ?null · baseline? pass_rate=0 (0/1 passed)*"])


def test_bad_gate_syntax_is_one_usage_error(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    result = run(pytester, "--agent-model=null", "--agent-gate=lite>=0.9")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: agentloop: gate 'lite>=0.9' is not readable: write SCOPE:METRIC*"])
    assert "Traceback" not in result.stderr.str()
