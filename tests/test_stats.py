"""Interval, pass^k / pass@k and comparison checks against hand-worked values and scipy."""

from __future__ import annotations

import math

import pytest
from _attempts import runs
from hypothesis import given
from hypothesis import strategies as st
from scipy.stats import boschloo_exact, fisher_exact

from pytest_agentloop.analysis.stats import (
    BELOW_MINIMUM,
    boschloo,
    boschloo_greater,
    compare_attempts,
    compare_counts,
    holm,
    more_runs,
    newcombe,
    pass_hat_k,
    runs_by_canary,
    stratified_lower_tail,
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


TABLES = [
    (0, 3, 3, 3),
    (2, 9, 8, 9),
    (6, 9, 8, 9),
    (0, 9, 9, 9),
    (3, 9, 5, 9),
    (4, 7, 1, 5),
    (10, 54, 30, 54),
]


@pytest.mark.parametrize(("bp", "bn", "cp", "cn"), TABLES)
def test_boschloo_matches_scipy(bp: int, bn: int, cp: int, cn: int) -> None:
    expected = boschloo_exact([[cp, bp], [cn - cp, bn - bp]], alternative="two-sided").pvalue
    assert math.isclose(boschloo(bp, bn, cp, cn), expected, rel_tol=1e-4, abs_tol=1e-9)
    greater = boschloo_exact([[cp, bp], [cn - cp, bn - bp]], alternative="greater").pvalue
    assert math.isclose(boschloo_greater(bp, bn, cp, cn), greater, rel_tol=1e-4, abs_tol=1e-9)


def test_newcombe_matches_the_published_example() -> None:
    """Newcombe (1998), Statistics in Medicine 17:873, example (b): 56/70 vs 48/80, method 10."""
    low, high = newcombe(48, 80, 56, 70)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


@given(st.integers(1, 12), st.integers(1, 12), st.data())
def test_newcombe_contains_the_difference_and_is_never_a_point(bn: int, cn: int, data: st.DataObject) -> None:
    bp, cp = data.draw(st.integers(0, bn)), data.draw(st.integers(0, cn))
    low, high = newcombe(bp, bn, cp, cn)
    assert -1 <= low <= cp / cn - bp / bn <= high <= 1
    assert high - low > 0.05  # a bootstrap gave "+1.00 [+1.00, +1.00]" at 3/3 vs 0/3


@given(st.integers(1, 9), st.integers(1, 9), st.data())
def test_a_called_difference_always_has_an_interval_that_excludes_zero(
    bn: int, cn: int, data: st.DataObject
) -> None:
    bp, cp = data.draw(st.integers(0, bn)), data.draw(st.integers(0, cn))
    result = compare_counts((bp, bn), (cp, cn))
    if result.verdict == "better":
        assert result.ci_low > 0 and result.p_value < 0.05
    if result.verdict == "worse":
        assert result.ci_high < 0 and result.p_value < 0.05


def test_eight_of_nine_vs_six_of_nine_is_not_a_winner() -> None:
    result = compare_counts((6, 9), (8, 9), label="temperature=0.7")
    assert result.verdict == "no evidence of a difference"
    assert math.isclose(result.delta, 2 / 9)
    assert result.ci_low <= result.delta <= result.ci_high
    assert (
        "8/9 vs baseline 6/9" in result.text
        and "Boschloo" in result.text
        and BELOW_MINIMUM not in result.text
    )


def test_the_verdict_does_not_depend_on_the_order_of_repetitions() -> None:
    """The issue's case: 8/9 vs 2/9 was 'better' paired one way and 'no evidence' paired another."""
    base_one, base_two = runs("PPFFFFFFF"), runs("FFFFFFFPP")
    cell = runs("PPPPPPPPF", cell="x")
    first, second = compare_attempts(base_one, cell, "x"), compare_attempts(base_two, cell, "x")
    assert first == second
    assert first.verdict == "better"


def test_clear_difference_is_called_and_thin_data_is_flagged() -> None:
    better = compare_counts((2, 10), (10, 10))
    assert better.verdict == "better" and better.p_value < 0.01 and better.ci_low > 0
    worse = compare_counts((8, 8), (0, 8), repetitions=2)
    assert worse.verdict == "worse"
    assert BELOW_MINIMUM in worse.text
    thin = compare_counts((0, 3), (3, 3))  # the one table N=3 can call: Boschloo p = 1/32
    assert thin.verdict == "better" and math.isclose(thin.p_value, 0.03125, rel_tol=1e-6)


def test_unbalanced_canaries_are_cut_to_the_runs_both_sides_have() -> None:
    base = runs("PIFF", canary="a") + runs("FFFFFF", canary="b")
    cell = (
        runs("PPP", canary="a", cell="x")
        + runs("PPP", canary="b", cell="x")
        + runs("PPP", canary="z", cell="x")
    )
    result = compare_attempts(base, cell, "x")
    assert (result.base_passes, result.base_n, result.cell_passes, result.cell_n) == (1, 6, 6, 6)
    assert result.canaries == 2 and result.repetitions == 3  # z has no baseline; b keeps 3 of 6
    assert "cut to the runs both sides have" in result.text and "pooled over 2 canaries" in result.text


def test_more_runs_projects_the_observed_rates() -> None:
    thin = compare_counts((1, 3), (2, 3))
    assert thin.verdict == "no evidence of a difference"
    more = more_runs(thin, lambda c: c.verdict == "better")
    assert more is not None and more > 3
    grown = compare_counts((round(1 / 3 * (3 + more)), 3 + more), (round(2 / 3 * (3 + more)), 3 + more))
    assert grown.verdict == "better"
    assert more_runs(compare_counts((1, 2), (1, 2)), lambda c: c.verdict == "better") is None


def test_pass_hat_k() -> None:
    by_canary = runs_by_canary(runs("PPP", canary="a") + runs("PPF", canary="b") + runs("FFF", canary="c"))
    hat = pass_hat_k(by_canary, 2)
    assert hat.canaries == 3
    assert math.isclose(hat.observed, 2 / 3)  # a and b passed their first two runs
    assert math.isclose(hat.unbiased, (1 + 1 / 3 + 0) / 3)  # C(2,2)/C(3,2) = 1/3 for b
    assert pass_hat_k(by_canary, 4).canaries == 0


@pytest.mark.parametrize(
    ("now", "n", "before", "m"), [(2, 3, 15, 15), (0, 4, 4, 4), (5, 10, 47, 50), (3, 3, 0, 5)]
)
def test_one_stratum_is_fishers_exact_test(now: int, n: int, before: int, m: int) -> None:
    expected = fisher_exact([[now, n - now], [before, m - before]], alternative="less").pvalue
    assert math.isclose(stratified_lower_tail([(now, n, before, m)]), expected, rel_tol=1e-9)


def test_strata_convolve_like_brute_force_enumeration() -> None:
    """Two canaries: the exact conditional distribution of the summed passes, enumerated by hand."""
    strata = [(1, 3, 5, 6), (0, 2, 2, 3)]

    def pmf(now_n: int, old_n: int, total: int, k: int) -> float:
        return math.comb(now_n, k) * math.comb(old_n, total - k) / math.comb(now_n + old_n, total)

    brute = sum(
        pmf(3, 6, 6, a) * pmf(2, 3, 2, b)
        for a in range(4)
        for b in range(3)
        if a + b <= 1 and a <= 6 and b <= 2
    )
    assert math.isclose(stratified_lower_tail(strata), brute, rel_tol=1e-12)


def test_holm_matches_its_definition() -> None:
    assert holm([0.01, 0.04, 0.03, 0.20]) == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert holm([]) == []
