"""Interval, pass^k / pass@k and paired-comparison checks against hand-worked values and scipy."""

from __future__ import annotations

import math

import pytest
from _attempts import runs
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import binomtest

from pytest_agentloop.analysis.stats import (
    BELOW_MINIMUM,
    compare,
    compare_attempts,
    mcnemar_exact,
    min_discordant,
    pass_hat_k,
    runs_by_canary,
    wilson,
)


def test_wilson_hand_checked_value() -> None:
    # 8/10 at z=1.96: centre 0.99208/1.38416 = 0.7167, half-width 0.2266 (worked by hand from the formula).
    low, high = wilson(8, 10)
    assert round(low, 4) == 0.4902
    assert round(high, 4) == 0.9433


def test_wilson_extremes_and_empty() -> None:
    assert wilson(0, 3)[0] == 0.0
    assert wilson(3, 3)[1] == 1.0
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="outside"):
        wilson(4, 3)


@given(st.integers(1, 500).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_estimate_within_unit_and_symmetric(case: tuple[int, int]) -> None:
    passes, n = case
    low, high = wilson(passes, n)
    assert 0.0 <= low <= passes / n <= high <= 1.0
    mirror_low, mirror_high = wilson(n - passes, n)
    assert math.isclose(low, 1 - mirror_high, abs_tol=1e-12)
    assert math.isclose(high, 1 - mirror_low, abs_tol=1e-12)


@given(st.integers(1, 50), st.integers(0, 50))
def test_wilson_narrows_with_n(n: int, passes: int) -> None:
    passes = min(passes, n)
    low, high = wilson(passes, n)
    low4, high4 = wilson(4 * passes, 4 * n)
    assert high4 - low4 < high - low


@pytest.mark.parametrize(("b", "c"), [(0, 0), (1, 0), (0, 5), (2, 6), (3, 3), (1, 9), (7, 2)])
def test_mcnemar_matches_scipy_binomtest(b: int, c: int) -> None:
    expected = 1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5).pvalue
    assert math.isclose(mcnemar_exact(b, c), expected, rel_tol=1e-9)


def test_min_discordant_is_six_at_five_percent() -> None:
    assert min_discordant() == 6  # 2 * 0.5**6 = 0.031; 2 * 0.5**5 = 0.0625


def test_eight_of_nine_vs_six_of_nine_is_not_a_winner() -> None:
    pairs = [(True, True)] * 6 + [(False, True)] * 2 + [(False, False)]
    result = compare(pairs, repetitions=3, label="temperature=0.7")
    assert result.verdict == "no evidence of a difference"
    assert result.n_pairs == 9 and math.isclose(result.delta, 2 / 9)
    assert result.ci_low <= result.delta <= result.ci_high
    assert "8/9 vs baseline 6/9" in result.text and BELOW_MINIMUM not in result.text


def test_clear_difference_is_called_and_thin_data_is_flagged() -> None:
    better = compare([(False, True)] * 8 + [(True, True)] * 2, repetitions=5)
    assert better.verdict == "better" and better.p_value < 0.01 and better.ci_low > 0
    worse = compare([(True, False)] * 8, repetitions=2)
    assert worse.verdict == "worse"
    assert BELOW_MINIMUM in worse.text


def test_bootstrap_interval_is_reproducible() -> None:
    pairs = [(False, True), (True, False), (False, True), (True, True), (False, False)] * 2
    assert compare(pairs, 3) == compare(pairs, 3)


def test_pairs_follow_repetition_order_and_skip_infra_errors() -> None:
    base = runs("PIFF", canary="a") + runs("FFF", canary="b")
    cell = (
        runs("PPP", canary="a", cell="x")
        + runs("PPP", canary="b", cell="x")
        + runs("PPP", canary="z", cell="x")
    )
    result = compare_attempts(base, cell, "x")
    assert result.n_pairs == 6  # a: 3 scored pairs, b: 3; z has no baseline
    assert result.repetitions == 3
    assert result.discordant == 5


def test_pass_hat_k() -> None:
    by_canary = runs_by_canary(runs("PPP", canary="a") + runs("PPF", canary="b") + runs("FFF", canary="c"))
    hat = pass_hat_k(by_canary, 2)
    assert hat.canaries == 3
    assert math.isclose(hat.observed, 2 / 3)  # a and b passed their first two runs
    assert math.isclose(hat.unbiased, (1 + 1 / 3 + 0) / 3)  # C(2,2)/C(3,2) = 1/3 for b
    assert pass_hat_k(by_canary, 4).canaries == 0
