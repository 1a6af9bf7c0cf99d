"""Regressions against the history: this run's pass rate per model × cell × canary against earlier runs'."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pytest_agentloop.analysis.stats import scored, wilson
from pytest_agentloop.records import Attempt, Outcome

SIGMA_MIN_RUNS = 5  # below this many earlier runs, the interval rule replaces the 2-sigma rule


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
    canary: str
    passes: int
    n: int
    historical_rate: float
    runs: int
    rule: str  # "2 sigma" or "interval"

    def describe(self) -> str:
        return (
            f"{self.model} · {self.cell} · {self.canary}: {self.passes}/{self.n} now vs "
            f"{self.historical_rate:.0%} over {self.runs} earlier run(s) ({self.rule})"
        )


def find_regressions(
    attempts: Iterable[Attempt], history: Mapping[tuple[str, str, str], list[RunRate]]
) -> list[Regression]:
    """Each model × cell × canary of this run against its earlier runs.

    With SIGMA_MIN_RUNS or more earlier runs, a pass rate more than 2 standard deviations below the
    historical mean (of per-run rates) is a regression; with fewer (too few to estimate a spread),
    one below the Wilson interval of the pooled earlier runs.
    """
    groups: dict[tuple[str, str, str], list[Attempt]] = defaultdict(list)
    for attempt in scored(attempts):
        groups[(attempt.model, attempt.cell, attempt.canary)].append(attempt)
    found = []
    for key, group in sorted(groups.items()):
        earlier = history.get(key, [])
        if not earlier:
            continue
        passes, n = sum(a.outcome is Outcome.PASSED for a in group), len(group)
        rate = passes / n
        if len(earlier) >= SIGMA_MIN_RUNS:
            rates = [r.rate for r in earlier]
            mean = sum(rates) / len(rates)
            sigma = math.sqrt(sum((r - mean) ** 2 for r in rates) / (len(rates) - 1))
            regressed, rule, reference = rate < mean - 2 * sigma and rate < mean, "2 sigma", mean
        else:
            old_passes, old_n = sum(r.passes for r in earlier), sum(r.n for r in earlier)
            reference = old_passes / old_n
            regressed, rule = rate < wilson(old_passes, old_n)[0], "interval"
        if regressed:
            found.append(Regression(*key, passes, n, reference, len(earlier), rule))
    return found
