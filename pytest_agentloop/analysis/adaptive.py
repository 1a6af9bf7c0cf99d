"""Adaptive repetition: stop a cell once its decision at the maximum N can no longer change.

The decision is the one a fixed-N run makes: a cell against its baseline on one canary (the exact
comparison of `stats.compare_counts` at N_max runs a side), or a baseline with no cell to compare
against the deploy bar (passes >= DEPLOY_BAR of N_max). After each round (one repetition of every
cell), and never before the methodology's minimum of 3 runs, a cell stops when:

1. **curtailment**: every way its remaining runs (and its baseline's) could still come out gives the
   same decision. The decision is then exactly the fixed-N decision, so its error rates are the
   fixed-N test's, unchanged; or
2. **futility** (comparisons only): both cells have passed at the same rate so far, and the
   predictive probability that the remaining runs still reach a difference is below FUTILITY
   (stochastic curtailment, Lan, Simon & Halperin 1982; each rate uncertain as Jeffreys' prior and
   the runs so far say). A futility stop can only withhold a "better"/"worse" call, never make one:
   the false-difference rate stays at most the fixed-N test's alpha; a real difference may be missed
   a little more often. benchmarks/bench_adaptive.py measures both against fixed N.

Pure functions on counts; the pytest side is `pytest_agentloop.adaptive`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from pytest_agentloop.analysis.stats import MIN_REPETITIONS, compare_counts
from pytest_agentloop.analysis.verdicts import DEPLOY_BAR

FUTILITY = 0.05  # the predictive probability of a difference below which an even cell stops

Counts = tuple[int, int]  # (passes, runs)


@dataclass(frozen=True)
class Settled:
    decision: str  # "better", "worse", "no evidence of a difference"; or "reaches 80%" / "below 80%"
    rule: str  # "curtailment" or "futility"

    def describe(self, runs: int, most: int) -> str:
        return f"settled after {runs} of {most} runs by {self.rule}: {self.decision}"


def comparison_settled(base: Counts, cell: Counts, most: int) -> Settled | None:
    """Whether the cell's verdict against its baseline at `most` runs a side is already known."""

    def verdict(b: int, c: int) -> Hashable:
        return compare_counts((b, most), (c, most)).verdict

    if min(base[1], cell[1]) < MIN_REPETITIONS:  # never fewer than the methodology's minimum
        return None
    outcomes = _completions(base, cell, most, verdict)
    if len(outcomes) == 1:
        return Settled(str(next(iter(outcomes))), "curtailment")
    none = "no evidence of a difference"
    alike = base[0] * cell[1] == cell[0] * base[1]  # the same pass rate so far
    if alike and 1 - outcomes.get(none, 0.0) < FUTILITY:
        return Settled(none, "futility")
    return None


def threshold_settled(counts: Counts, most: int, bar: float = DEPLOY_BAR) -> Settled | None:
    """Whether a lone baseline's pass rate at `most` runs will reach `bar`, whatever the rest do."""
    passes, runs = counts
    if runs < MIN_REPETITIONS:
        return None
    needed = math.ceil(bar * most - 1e-9)
    if passes >= needed:
        return Settled(f"reaches {bar:.0%}", "curtailment")
    if passes + (most - runs) < needed:
        return Settled(f"below {bar:.0%}", "curtailment")
    return None


def _completions(
    base: Counts, cell: Counts, most: int, decide: Callable[[int, int], Hashable]
) -> dict[Hashable, float]:
    """Each final decision the remaining runs can lead to, with its predictive probability: each side's
    pass rate uncertain as the runs so far say (Jeffreys' Beta(passes + 1/2, failures + 1/2)), so 0/3
    is not taken for a certain 0% and three runs do not settle more than they can."""
    (b_pass, b_runs), (c_pass, c_runs) = base, cell
    b_left, c_left = most - b_runs, most - c_runs
    found: dict[Hashable, float] = {}
    for b_more in range(b_left + 1):
        for c_more in range(c_left + 1):
            chance = _predictive(b_more, b_left, b_pass, b_runs) * _predictive(c_more, c_left, c_pass, c_runs)
            decision = decide(b_pass + b_more, c_pass + c_more)
            found[decision] = found.get(decision, 0.0) + chance
    return found


def _predictive(more: int, left: int, passes: int, runs: int) -> float:
    """Beta-binomial: the chance of `more` passes in `left` runs after `passes` of `runs`."""
    a, b = passes + 0.5, runs - passes + 0.5
    return math.comb(left, more) * math.exp(_log_beta(a + more, b + left - more) - _log_beta(a, b))


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
