"""Attempts -> per-cell summaries, rollups and one decision per model.

Every rate carries N and a Wilson interval; a cell beats the baseline only on a paired test; and
infra errors are dropped from N, since they say nothing about the model.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pytest_agentloop.analysis.cost import Price, cost_rows
from pytest_agentloop.analysis.diagnosis import BASELINE, ceiling_diagnoses, group
from pytest_agentloop.analysis.stats import (
    BELOW_MINIMUM,
    MIN_REPETITIONS,
    Comparison,
    compare_attempts,
    pass_hat_k,
    runs_by_canary,
    scored,
    wilson,
)
from pytest_agentloop.records import Attempt, Outcome

TIER_ORDER = ("smoke", "lite", "medium", "heavy")  # placement tiers; traps are a separate gate
DEPLOY_BAR = 0.8  # pass rate a tier must reach to deploy on it

DecisionVerdict = Literal["deploy", "needs more runs", "not suitable"]


@dataclass(frozen=True)
class CellSummary:
    """DESIGN.md's summary row (model, cell, canary, passes, n, pass_rate, ci_low, ci_high,
    mean_turns_to_pass, budget_exceeded, infra_errors, diagnosis) plus the counters behind it."""

    model: str
    cell: str
    canary: str
    tier: str
    passes: int
    n: int
    pass_rate: float
    ci_low: float
    ci_high: float
    mean_turns_to_pass: float | None
    budget_exceeded: int
    infra_errors: int
    diagnosis: str
    budget_exceeded_by_limit: dict[str, int] = field(default_factory=dict)
    malformed_per_attempt: float | None = None  # None: the agent reported no counters
    redundant_per_attempt: float | None = None
    text_calls_per_attempt: float | None = None
    partial_credit: float | None = None  # mean share of hidden checks passed, where they ran
    pass_hat_3: float | None = None  # all of 3 repetitions pass (unbiased estimate); None below 3 runs


@dataclass(frozen=True)
class Rollup:
    """Pass/N over many canaries: per (model, cell) when tier is None, else per (model, cell, tier)."""

    model: str
    cell: str
    tier: str | None
    passes: int
    n: int
    canaries: int
    ci_low: float
    ci_high: float
    budget_exceeded: int
    infra_errors: int
    pass_hat_3: float | None

    @property
    def pass_rate(self) -> float:
        return self.passes / self.n if self.n else 0.0

    def describe(self) -> str:
        return f"{self.passes}/{self.n} ({self.pass_rate:.0%}, 95% CI {self.ci_low:.0%}-{self.ci_high:.0%})"


@dataclass(frozen=True)
class ModelDecision:
    model: str
    verdict: DecisionVerdict
    tier: str | None
    cell: str
    text: str  # the one-line decision
    cost_per_pass: float | None


def below_minimum(attempts: Iterable[Attempt]) -> str | None:
    """The warning a verdict needs when its model x cell x canary ran fewer than the minimum.

    Names the cells when only some fell short (a failed smoke gate stops a cell at its one gate
    attempt): "every verdict" would then be false, and --repeat=3 would not be the fix.
    """
    reps = {key: len(r) for key, r in group(scored(attempts), "model", "cell", "canary").items()}
    short = {key: n for key, n in reps.items() if n < MIN_REPETITIONS}
    if not short:
        return None
    if len(short) == len(reps):
        fewest = min(short.values())
        return f"every verdict here is {BELOW_MINIMUM} (N={fewest}): rerun with --repeat={MIN_REPETITIONS}"
    cells: dict[tuple[str, str], int] = {}
    for (model, cell, _), n in short.items():
        cells[model, cell] = min(n, cells.get((model, cell), n))
    several_models = len({model for model, _, _ in reps}) > 1
    names = ", ".join(
        f"{model} · {cell} (N={n})" if several_models else f"{cell} (N={n})"
        for (model, cell), n in sorted(cells.items())
    )
    return f"{names}: {BELOW_MINIMUM}, so those verdicts are no evidence yet; run them to N={MIN_REPETITIONS}"


def summarize(attempts: Iterable[Attempt]) -> list[CellSummary]:
    """One row per (model, cell, canary)."""
    attempts = list(attempts)
    ceilings = {(d.model, d.canary): d.text for d in ceiling_diagnoses(attempts)}
    return [
        _summary(model, cell, canary, runs, ceilings.get((model, canary), "") if cell == BASELINE else "")
        for (model, cell, canary), runs in group(attempts, "model", "cell", "canary").items()
    ]


def _summary(model: str, cell: str, canary: str, runs: list[Attempt], ceiling: str) -> CellSummary:
    counted = scored(runs)
    n = len(counted)
    passed = [a for a in counted if a.outcome is Outcome.PASSED]
    over = Counter(str(a.limit) for a in counted if a.outcome is Outcome.BUDGET_EXCEEDED)
    graded = [a for a in counted if a.checks_total]
    low, high = wilson(len(passed), n)
    hat = pass_hat_k(runs_by_canary(counted), MIN_REPETITIONS)
    return CellSummary(
        model=model,
        cell=cell,
        canary=canary,
        tier=runs[0].tier,
        passes=len(passed),
        n=n,
        pass_rate=len(passed) / n if n else 0.0,
        ci_low=low,
        ci_high=high,
        mean_turns_to_pass=_mean([a.turns for a in passed]),
        budget_exceeded=sum(over.values()),
        infra_errors=len(runs) - n,
        diagnosis=ceiling or _failure_mix(counted),
        budget_exceeded_by_limit=dict(sorted(over.items())),
        malformed_per_attempt=_mean([a.malformed_tool_calls for a in counted]),
        redundant_per_attempt=_mean([a.redundant_tool_calls for a in counted]),
        text_calls_per_attempt=_mean([a.text_tool_calls for a in counted]),
        partial_credit=_mean([(a.checks_passed or 0) / (a.checks_total or 1) for a in graded]),
        pass_hat_3=None if math.isnan(hat.unbiased) else hat.unbiased,
    )


def _failure_mix(counted: Sequence[Attempt]) -> str:
    """The failures in one phrase, most frequent first: '2 budget_exceeded, 1 failed'."""
    mix = Counter(str(a.outcome) for a in counted if a.outcome is not Outcome.PASSED)
    return ", ".join(f"{count} {outcome}" for outcome, count in mix.most_common())


def _mean(values: Sequence[float | None]) -> float | None:
    """Mean of the values that were measured; None when none was (an agent that reports no counters)."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def cell_rollups(attempts: Iterable[Attempt]) -> list[Rollup]:
    return [_rollup(m, c, None, runs) for (m, c), runs in group(attempts, "model", "cell").items()]


def tier_rollups(attempts: Iterable[Attempt]) -> list[Rollup]:
    return [_rollup(m, c, t, runs) for (m, c, t), runs in group(attempts, "model", "cell", "tier").items()]


def _rollup(model: str, cell: str, tier: str | None, runs: list[Attempt]) -> Rollup:
    counted = scored(runs)
    passes = sum(a.outcome is Outcome.PASSED for a in counted)
    hat = pass_hat_k(runs_by_canary(counted), MIN_REPETITIONS)
    low, high = wilson(passes, len(counted))
    return Rollup(
        model=model,
        cell=cell,
        tier=tier,
        passes=passes,
        n=len(counted),
        canaries=len({a.canary for a in counted}),
        ci_low=low,
        ci_high=high,
        budget_exceeded=sum(a.outcome is Outcome.BUDGET_EXCEEDED for a in counted),
        infra_errors=len(runs) - len(counted),
        pass_hat_3=None if math.isnan(hat.unbiased) else hat.unbiased,
    )


def comparisons(attempts: Iterable[Attempt]) -> dict[str, Comparison]:
    """Every non-baseline cell of one model against its baseline, paired on shared canaries."""
    cells = {cell: runs for (cell,), runs in group(attempts, "cell").items()}
    baseline = cells.pop(BASELINE, [])
    return {cell: compare_attempts(baseline, runs, cell) for cell, runs in cells.items() if baseline}


def best_cell(attempts: Sequence[Attempt]) -> str:
    """The cell that beat the baseline by the most on a paired test; the baseline when none did."""
    better = [(c.delta, cell) for cell, c in comparisons(attempts).items() if c.verdict == "better"]
    return max(better)[1] if better else BASELINE


def decide(attempts: Iterable[Attempt], prices: Mapping[str, Price]) -> list[ModelDecision]:
    """One decision per model, best first: deployable tiers, then models needing runs, then the rest."""
    attempts = list(attempts)
    costs = {row.model: row.cost_per_pass for row in cost_rows(attempts, prices)}
    decisions = [
        _decide(model, scored(own), costs.get(model)) for (model,), own in group(attempts, "model").items()
    ]
    rank: dict[DecisionVerdict, int] = {"deploy": 0, "needs more runs": 1, "not suitable": 2}
    return sorted(
        decisions,
        key=lambda d: (
            rank[d.verdict],
            -TIER_ORDER.index(d.tier) if d.tier in TIER_ORDER else 0,
            math.inf if d.cost_per_pass is None else d.cost_per_pass,
            d.model,
        ),
    )


def _decide(model: str, counted: list[Attempt], cost_per_pass: float | None) -> ModelDecision:
    cell = best_cell(counted) if counted else BASELINE
    runs = [a for a in counted if a.cell == cell]
    tiers = {r.tier: r for r in tier_rollups(runs) if r.tier in TIER_ORDER}
    ordered = [tiers[t] for t in TIER_ORDER if t in tiers]
    reps = min((len(r) for r in runs_by_canary(runs).values()), default=0)

    def made(verdict: DecisionVerdict, tier: str | None, text: str) -> ModelDecision:
        return ModelDecision(model, verdict, tier, cell, f"{model}: {text}", cost_per_pass)

    if not ordered:
        return made("needs more runs", None, "needs more runs: no scored attempt on a lite/medium/heavy tier")
    if reps < MIN_REPETITIONS:
        return made("needs more runs", None, f"needs more runs: {BELOW_MINIMUM} (N={reps} with {cell})")
    placed = [r for r in ordered if r.pass_rate >= DEPLOY_BAR]
    if placed:
        top = placed[-1]
        return made("deploy", top.tier, f"deploy for tier {top.tier} with config {cell}: {top.describe()}")
    open_question = [r for r in ordered if r.ci_high >= DEPLOY_BAR]
    if open_question:
        r = open_question[0]
        text = f"needs more runs: {r.tier} {r.describe()} could still reach {DEPLOY_BAR:.0%}"
        return made("needs more runs", None, text)
    best = max(ordered, key=lambda r: r.pass_rate)
    return made("not suitable", None, f"not suitable: best is {best.tier} {best.describe()} with {cell}")
