"""Attempts -> per-cell summaries, rollups and one decision per model.

Every rate carries N and a Wilson interval; a cell beats the baseline only on an exact test whose
interval agrees; and infra errors are dropped from N, since they say nothing about the model.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pytest_agentloop.analysis.cost import Price, cost_rows
from pytest_agentloop.analysis.diagnosis import ceiling_diagnoses, group
from pytest_agentloop.analysis.stats import (
    BELOW_MINIMUM,
    MAX_MORE_RUNS,
    MIN_REPETITIONS,
    Comparison,
    compare_attempts,
    compare_counts,
    pass_hat_k,
    runs_by_canary,
    scored,
    wilson,
)
from pytest_agentloop.cells import BASELINE
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
        _summary(model, cell, canary, runs, ceilings.get((model, canary), "") if cell == BASELINE.id else "")
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
    """The failures in one phrase, most frequent first, each out of the runs: '2/3 budget_exceeded,
    1/3 failed' (said once for several canaries, a bare '1 failed' read as one failure in all)."""
    mix = Counter(str(a.outcome) for a in counted if a.outcome is not Outcome.PASSED)
    return ", ".join(f"{count}/{len(counted)} {outcome}" for outcome, count in mix.most_common())


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
    """Every non-baseline cell of one model against its baseline, on the canaries both ran."""
    cells = {cell: runs for (cell,), runs in group(attempts, "cell").items()}
    baseline = cells.pop(BASELINE.id, [])
    return {cell: compare_attempts(baseline, runs, cell) for cell, runs in cells.items() if baseline}


def best_cell(attempts: Sequence[Attempt]) -> str:
    """The cell that beat the baseline with the surest margin (the highest lower bound of the interval
    of the difference), at the methodology's N; the baseline when none did."""
    better = [
        (c.ci_low, c.delta, cell)
        for cell, c in comparisons(attempts).items()
        if c.verdict == "better" and c.repetitions >= MIN_REPETITIONS
    ]
    return max(better)[2] if better else BASELINE.id


def settings_text(attempts: Sequence[Attempt], cell: str) -> str:
    """A cell's settings spelled out, as they differ from the baseline: "turns=12, temperature=0.2"."""
    config = next((a.cell_config for a in attempts if a.cell == cell), {})
    base = next((a.cell_config for a in attempts if a.cell == BASELINE.id), {})
    changed = [f"{key}={_value(value)}" for key, value in sorted(config.items()) if value != base.get(key)]
    if cell == BASELINE.id:
        return "the baseline settings"
    return ", ".join(changed) or f"{cell} (same settings as the baseline)"


def _value(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "+".join(map(str, value)) or "none"
    return str(value)


@dataclass(frozen=True)
class ModelDecision:
    model: str
    verdict: DecisionVerdict
    tier: str | None
    cell: str
    settings: str  # the recommended cell's settings, spelled out
    text: str  # the one-line decision
    cost_per_pass: float | None
    rollup: Rollup | None = None  # the recommended cell over every canary
    rank: str = ""  # "1.", or "1=" for models tied on pass rate (no evidence of a difference)


def decide(attempts: Iterable[Attempt], prices: Mapping[str, Price]) -> list[ModelDecision]:
    """One decision per model, ranked by pass rate of its recommended cell; models whose rates the
    exact test cannot tell apart share a rank (stated as a tie) and are ordered by cost per pass."""
    attempts = list(attempts)
    costs = {row.model: row.cost_per_pass for row in cost_rows(attempts, prices)}
    decisions = [
        _decide(model, scored(own), costs.get(model)) for (model,), own in group(attempts, "model").items()
    ]
    by_rate = sorted(decisions, key=lambda d: (-(d.rollup.pass_rate if d.rollup else -1.0), d.model))
    groups: list[list[ModelDecision]] = []
    for decision in by_rate:
        leader = groups[-1][0] if groups else None
        if leader is not None and _tied(leader, decision):
            groups[-1].append(decision)
        else:
            groups.append([decision])
    ranked: list[ModelDecision] = []
    for members in groups:
        label = f"{len(ranked) + 1}" + ("=" if len(members) > 1 else ".")
        rate = {d.model: d.rollup.pass_rate if d.rollup else -1.0 for d in members}
        for decision in sorted(members, key=lambda d: (_cost_key(d.cost_per_pass), -rate[d.model], d.model)):
            ranked.append(replace(decision, rank=label))
    return ranked


def _cost_key(cost: float | None) -> float:
    return math.inf if cost is None else cost


def _tied(leader: ModelDecision, other: ModelDecision) -> bool:
    """No evidence of a difference between the two models' pass rates (Boschloo, unpaired)."""
    if leader.rollup is None or other.rollup is None:
        return leader.rollup is other.rollup
    a, b = leader.rollup, other.rollup
    return compare_counts((b.passes, b.n), (a.passes, a.n)).verdict == "no evidence of a difference"


def _decide(model: str, counted: list[Attempt], cost_per_pass: float | None) -> ModelDecision:
    cell = best_cell(counted) if counted else BASELINE.id
    runs = [a for a in counted if a.cell == cell]
    rollup = next(iter(cell_rollups(runs)), None)
    tiers = {r.tier: r for r in tier_rollups(runs) if r.tier in TIER_ORDER}
    ordered = [tiers[t] for t in TIER_ORDER if t in tiers]
    reps = min((len(r) for r in runs_by_canary(runs).values()), default=0)
    settings = settings_text(counted, cell)

    def made(verdict: DecisionVerdict, tier: str | None, text: str) -> ModelDecision:
        return ModelDecision(model, verdict, tier, cell, settings, f"{model}: {text}", cost_per_pass, rollup)

    if not ordered:
        return made("needs more runs", None, "needs more runs: no scored attempt on a lite/medium/heavy tier")
    if reps < MIN_REPETITIONS:
        return made(
            "needs more runs",
            None,
            f"needs {MIN_REPETITIONS - reps} more run{'s' if MIN_REPETITIONS - reps > 1 else ''} per canary: "
            f"{BELOW_MINIMUM} "
            f"(N={reps} with {settings})",
        )
    placed: list[Rollup] = []
    for rollup_tier in ordered:  # a tier counts only when every tier below it also reached the bar
        if rollup_tier.pass_rate < DEPLOY_BAR:
            break
        placed.append(rollup_tier)
    blocking = ordered[len(placed)] if len(placed) < len(ordered) else None
    if placed:
        top = placed[-1]
        text = f"deploy for tier {top.tier} with {settings}: {top.describe()}"
        if blocking is not None:
            text += f"; {blocking.tier} {blocking.describe()}: {_tier_status(blocking)}"
        return made("deploy", top.tier, text)
    assert blocking is not None
    if blocking.ci_high >= DEPLOY_BAR:
        status = _tier_status(blocking)
        return made("needs more runs", None, f"{status}: {blocking.tier} {blocking.describe()}")
    return made(
        "not suitable",
        None,
        f"not suitable: {blocking.tier} {blocking.describe()} with {settings} is below {DEPLOY_BAR:.0%} "
        "even at the top of its interval",
    )


def _tier_status(rollup: Rollup) -> str:
    """What a tier short of the bar still needs: more runs (how many), or nothing more to learn."""
    if rollup.ci_high < DEPLOY_BAR:
        return f"below {DEPLOY_BAR:.0%} even at the top of its interval"
    per_canary = max(rollup.canaries, 1)
    rate = rollup.pass_rate
    for more in range(1, MAX_MORE_RUNS + 1):
        n = rollup.n + per_canary * more
        low, high = wilson(round(rate * n), n)
        if high < DEPLOY_BAR or low >= DEPLOY_BAR:
            return f"needs about {more} more runs per canary to settle {DEPLOY_BAR:.0%}"
    return f"needs more than {MAX_MORE_RUNS} more runs per canary: its rate is near {DEPLOY_BAR:.0%}"
