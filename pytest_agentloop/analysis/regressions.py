"""Regressions against the history: this run's pass rate per model × cell × tier against earlier runs'.

A statistician's version of "did it get worse?": one check per model × cell × tier (the canaries of a
tier pooled, each kept as its own stratum), an exact one-sided test of this run against all earlier
runs of the same canaries (`stats.stratified_lower_tail`), and Holm's correction over every check of
the run, so checking many tiers and cells does not make a false alarm likely. The history counts as
the finite sample it is: five runs at 3/3 then one at 2/3 is no regression (p = 0.17 before any
correction). benchmarks/bench_regressions.py measures both error rates by simulation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pytest_agentloop.analysis.stats import ALPHA, Stratum, holm, scored, stratified_lower_tail
from pytest_agentloop.records import Attempt, Outcome


@dataclass(frozen=True)
class RunRate:
    """One earlier run's result for a model × canary × cell."""

    run_id: str
    started: str
    passes: int
    n: int

    @property
    def rate(self) -> float:
        return self.passes / self.n


@dataclass(frozen=True)
class Regression:
    model: str
    cell: str
    scope: str  # "tier lite": the canaries pooled in the check
    passes: int
    n: int
    history_passes: int
    history_n: int
    runs: int  # earlier runs that hold these canaries
    p_value: float  # one-sided exact (stratified by canary)
    adjusted: float  # Holm-adjusted over every check of the run
    checks: int

    def describe(self) -> str:
        return (
            f"{self.model} · {self.cell} · {self.scope}: {self.passes}/{self.n} now vs "
            f"{self.history_passes}/{self.history_n} ({self.history_passes / self.history_n:.0%}) over "
            f"{self.runs} earlier run(s) (exact one-sided p={self.p_value:.2g} by canary; "
            f"Holm-adjusted p={self.adjusted:.2g} over {self.checks} checks)"
        )


def find_regressions(
    attempts: Iterable[Attempt],
    history: Mapping[tuple[str, str, str], list[RunRate]],
    alpha: float = ALPHA,
) -> list[Regression]:
    """Each model × cell × tier of this run against the earlier runs of its canaries; flagged when the
    Holm-adjusted p-value is below alpha. Canaries without history take no part."""
    tiers: dict[tuple[str, str, str], dict[str, list[Attempt]]] = defaultdict(lambda: defaultdict(list))
    for attempt in scored(attempts):
        tiers[(attempt.model, attempt.cell, attempt.tier)][attempt.canary].append(attempt)
    checks: list[tuple[tuple[str, str, str], list[Stratum], int]] = []
    for (model, cell, tier), canaries in sorted(tiers.items()):
        strata: list[Stratum] = []
        runs: set[str] = set()
        for canary, own in sorted(canaries.items()):
            earlier = history.get((model, cell, canary), [])
            if not earlier:
                continue
            passes = sum(a.outcome is Outcome.PASSED for a in own)
            strata.append((passes, len(own), sum(r.passes for r in earlier), sum(r.n for r in earlier)))
            runs.update(r.run_id for r in earlier)
        if strata:
            checks.append(((model, cell, tier), strata, len(runs)))
    p_values = [stratified_lower_tail(strata) for _, strata, _ in checks]
    return [
        Regression(
            model,
            cell,
            f"tier {tier}",
            sum(s[0] for s in strata),
            sum(s[1] for s in strata),
            sum(s[2] for s in strata),
            sum(s[3] for s in strata),
            runs,
            p,
            adjusted,
            len(checks),
        )
        for ((model, cell, tier), strata, runs), p, adjusted in zip(
            checks, p_values, holm(p_values), strict=True
        )
        if adjusted < alpha
    ]
