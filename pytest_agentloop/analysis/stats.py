"""Small-sample statistics for pass/fail data, in pure Python so a saved results file needs no scipy.

The methodology runs few repetitions (N >= 3), so every rate is shown with an interval and every
comparison between cells is a paired test on the same canaries: a raw 8/9 vs 6/9 is not a winner.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pytest_agentloop.records import Attempt, Outcome

MIN_REPETITIONS = 3  # the methodology's minimum per (canary, cell)
ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20260501  # fixed: the same results file always gives the same interval
BELOW_MINIMUM = f"below the methodology's minimum of N={MIN_REPETITIONS}"

Verdict = Literal["better", "worse", "no evidence of a difference"]


def wilson(passes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a pass rate: sane at 0/n and n/n, unlike the normal approximation."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= passes <= n:
        raise ValueError(f"wilson: passes={passes} is outside 0..n={n}")
    p = passes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # At 0/n and n/n the bound is exactly 0 or 1; rounding must not push it past the point estimate.
    low = 0.0 if passes == 0 else max(0.0, centre - half)
    high = 1.0 if passes == n else min(1.0, centre + half)
    return (low, high)


def scored(attempts: Iterable[Attempt]) -> list[Attempt]:
    """The attempts that count for or against the model: infrastructure errors never do."""
    return [a for a in attempts if a.outcome is not Outcome.INFRA_ERROR]


def runs_by_canary(attempts: Iterable[Attempt]) -> dict[str, list[bool]]:
    """Pass/fail per canary in repetition order: the unit pass^k is estimated on."""
    runs: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in scored(attempts):
        runs[attempt.canary].append(attempt)
    return {
        canary: [a.outcome is Outcome.PASSED for a in sorted(group, key=lambda a: a.repetition)]
        for canary, group in sorted(runs.items())
    }


@dataclass(frozen=True)
class KEstimate:
    """pass^k over canaries: the plain observed share and the unbiased combinatorial estimate."""

    k: int
    observed: float  # share of canaries whose first k runs all passed
    unbiased: float  # mean over canaries of C(c,k)/C(n,k)
    canaries: int  # canaries with at least k runs; the others cannot say anything about k


def pass_hat_k(runs: Mapping[str, Sequence[bool]], k: int) -> KEstimate:
    """Probability that all k repetitions pass: what an unattended agent fleet actually experiences."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    eligible = [list(r) for r in runs.values() if len(r) >= k]
    if not eligible:
        return KEstimate(k=k, observed=math.nan, unbiased=math.nan, canaries=0)
    observed = sum(all(r[:k]) for r in eligible) / len(eligible)
    estimate = sum(math.comb(sum(r), k) / math.comb(len(r), k) for r in eligible) / len(eligible)
    return KEstimate(k=k, observed=observed, unbiased=estimate, canaries=len(eligible))


def mcnemar_exact(base_only: int, cell_only: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of the discordant pairs against 1/2."""
    m = base_only + cell_only
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, i) for i in range(min(base_only, cell_only) + 1)) / 2**m
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class Comparison:
    """A cell against the baseline on the same (canary, repetition) pairs."""

    verdict: Verdict
    delta: float  # cell pass rate minus baseline pass rate over the pairs
    p_value: float  # exact McNemar
    ci_low: float  # paired bootstrap percentile interval of delta
    ci_high: float
    n_pairs: int
    text: str
    discordant: int = 0
    repetitions: int = 0  # the fewest repetitions any paired canary has
    base_failures: int = 0  # pairs the cell could improve on


def pair_runs(baseline: Sequence[Attempt], cell: Sequence[Attempt]) -> tuple[list[tuple[bool, bool]], int]:
    """(baseline passed, cell passed) per canary x repetition index present in both, and the fewest reps.

    Repetitions are matched by their order within a canary, not their raw number, so an infra error
    removed from one side does not unpair everything after it.
    """
    base_runs, cell_runs = runs_by_canary(baseline), runs_by_canary(cell)
    pairs: list[tuple[bool, bool]] = []
    reps: list[int] = []
    for canary in sorted(base_runs.keys() & cell_runs.keys()):
        matched = list(zip(base_runs[canary], cell_runs[canary], strict=False))
        pairs.extend(matched)
        reps.append(len(matched))
    return pairs, min(reps, default=0)


def compare(
    pairs: Sequence[tuple[bool, bool]],
    repetitions: int,
    label: str = "cell",
    alpha: float = ALPHA,
    against: str = "baseline",
) -> Comparison:
    """Exact McNemar for the verdict, a seeded paired bootstrap for the interval of the difference."""
    n = len(pairs)
    base_only = sum(1 for b, c in pairs if b and not c)
    cell_only = sum(1 for b, c in pairs if c and not b)
    p_value = mcnemar_exact(base_only, cell_only)
    delta = (cell_only - base_only) / n if n else 0.0
    ci_low, ci_high = _bootstrap_delta(pairs)
    verdict: Verdict = "no evidence of a difference"
    if n and p_value < alpha:
        verdict = "better" if delta > 0 else "worse"
    base_passes, cell_passes = sum(b for b, _ in pairs), sum(c for _, c in pairs)
    text = (
        f"{label} {cell_passes}/{n} vs {against} {base_passes}/{n}: {verdict} "
        f"(delta {delta:+.2f}, 95% CI [{ci_low:+.2f}, {ci_high:+.2f}], "
        f"McNemar p={p_value:.3g} on {base_only + cell_only} discordant pairs)"
    )
    if repetitions < MIN_REPETITIONS:
        text += f"; {BELOW_MINIMUM} (N={repetitions})"
    return Comparison(
        verdict=verdict,
        delta=delta,
        p_value=p_value,
        ci_low=ci_low,
        ci_high=ci_high,
        n_pairs=n,
        text=text,
        discordant=base_only + cell_only,
        repetitions=repetitions,
        base_failures=n - base_passes,
    )


def compare_attempts(
    baseline: Sequence[Attempt], cell: Sequence[Attempt], label: str = "cell", against: str = "baseline"
) -> Comparison:
    """`compare` on two attempt sets of one model, paired on the canaries both ran."""
    pairs, reps = pair_runs(baseline, cell)
    return compare(pairs, reps, label, against=against)


def min_discordant(alpha: float = ALPHA) -> int:
    """The fewest discordant pairs, all one way, with which the exact McNemar test can reach alpha."""
    m = 1
    while mcnemar_exact(0, m) >= alpha:
        m += 1
    return m


def _bootstrap_delta(pairs: Sequence[tuple[bool, bool]]) -> tuple[float, float]:
    n = len(pairs)
    if n == 0:
        return (0.0, 0.0)
    diffs = [int(c) - int(b) for b, c in pairs]
    rng = random.Random(BOOTSTRAP_SEED)
    means = sorted(sum(rng.choices(diffs, k=n)) / n for _ in range(BOOTSTRAP_RESAMPLES))
    lo = means[int(BOOTSTRAP_RESAMPLES * ALPHA / 2)]
    hi = means[int(BOOTSTRAP_RESAMPLES * (1 - ALPHA / 2)) - 1]
    return (lo, hi)
