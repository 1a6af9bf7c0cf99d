"""Small-sample statistics for pass/fail data, in pure Python so a saved results file needs no scipy.

The methodology runs few repetitions (N >= 3), so every rate is shown with an interval and every
comparison between cells is an exact test: a raw 8/9 vs 6/9 is not a winner.

Repetitions of two cells are independent (a cell's seed is the same for every repetition, so
repetition 2 of one cell has nothing to do with repetition 2 of another): comparisons are unpaired.
The test is Boschloo's exact unconditional test (more powerful than Fisher's, exact at any N) and
the interval of the difference is Newcombe's hybrid score interval, which agrees with it at small N
where a bootstrap degenerates ("+1.00 [+1.00, +1.00]"). A difference is called only when both do.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from pytest_agentloop.records import Attempt, Outcome

MIN_REPETITIONS = 3  # the methodology's minimum per (canary, cell)
ALPHA = 0.05
BELOW_MINIMUM = f"below the methodology's minimum of N={MIN_REPETITIONS}"

ComparisonVerdict = Literal["better", "worse", "no evidence of a difference"]


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


def newcombe(base_passes: int, base_n: int, cell_passes: int, cell_n: int) -> tuple[float, float]:
    """95% interval of cell rate minus baseline rate: Newcombe's hybrid score (his method 10).

    Built from the two Wilson intervals, so it stays inside [-1, 1] and is not degenerate at 0/n or
    n/n, where a bootstrap of the difference collapses to a point.
    """
    if not base_n or not cell_n:
        return (-1.0, 1.0)
    p1, p2 = base_passes / base_n, cell_passes / cell_n
    l1, u1 = wilson(base_passes, base_n)
    l2, u2 = wilson(cell_passes, cell_n)
    delta = p2 - p1
    return (
        max(-1.0, delta - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)),
        min(1.0, delta + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)),
    )


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


@lru_cache(maxsize=256)
def _hypergeometric(base_n: int, cell_n: int) -> list[tuple[list[float], list[float]]]:
    """Per total passes t: the probability of each cell pass count given t (the null's conditional
    distribution) and its upper tails, Fisher's one-sided p for every table with that total."""
    rows = []
    for total in range(base_n + cell_n + 1):
        whole = _log_comb(base_n + cell_n, total)
        pmf = [
            math.exp(_log_comb(cell_n, c) + _log_comb(base_n, total - c) - whole)
            if 0 <= total - c <= base_n
            else 0.0
            for c in range(cell_n + 1)
        ]
        tails = [0.0] * (cell_n + 2)
        for c in range(cell_n, -1, -1):
            tails[c] = tails[c + 1] + pmf[c]
        rows.append((pmf, tails[: cell_n + 1]))
    return rows


@lru_cache(maxsize=65536)
def boschloo_greater(base_passes: int, base_n: int, cell_passes: int, cell_n: int) -> float:
    """One-sided Boschloo exact p-value that the cell passes more often than the baseline.

    The statistic is Fisher's one-sided p; the p-value is the largest probability, over every common
    pass rate pi the two cells could share under the null, of a table at least as extreme. Grouped by
    their total passes t, the extreme tables hold a share r_t of the hypergeometric mass, so
    p(pi) = sum_t r_t Binomial(t; N, pi): cheap to maximise, O(N^2) to build.
    """
    rows = _hypergeometric(base_n, cell_n)
    observed = rows[base_passes + cell_passes][1][cell_passes] * (1 + 1e-13)
    total = base_n + cell_n
    shares = [
        sum(h for h, tail in zip(pmf, tails, strict=True) if h and tail <= observed) for pmf, tails in rows
    ]
    terms = [(t, math.log(share) + _log_comb(total, t)) for t, share in enumerate(shares) if share > 0]

    def p_at(pi: float) -> float:
        if pi <= 0.0 or pi >= 1.0:
            return shares[0 if pi <= 0.0 else total]
        lp, lq = math.log(pi), math.log1p(-pi)
        return sum(math.exp(lw + t * lp + (total - t) * lq) for t, lw in terms)

    return min(1.0, _maximise(p_at))


def _maximise(func: Callable[[float], float], grid: int = 200, refine: int = 40) -> float:
    """Max of a smooth function on [0, 1]: a grid, then a golden-section search around its best point."""
    points = [i / grid for i in range(grid + 1)]
    best = max(range(grid + 1), key=lambda i: func(points[i]))
    low, high = points[max(best - 1, 0)], points[min(best + 1, grid)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(refine):
        left, right = high - ratio * (high - low), low + ratio * (high - low)
        if func(left) < func(right):
            low = left
        else:
            high = right
    return max(func(points[best]), func((low + high) / 2))


def boschloo(base_passes: int, base_n: int, cell_passes: int, cell_n: int) -> float:
    """Two-sided Boschloo exact p-value: twice the smaller one-sided p (as scipy.stats.boschloo_exact)."""
    if not base_n or not cell_n or base_passes + cell_passes in (0, base_n + cell_n):
        return 1.0
    greater = boschloo_greater(base_passes, base_n, cell_passes, cell_n)
    less = boschloo_greater(cell_passes, cell_n, base_passes, base_n)
    return min(1.0, 2 * min(greater, less))


@dataclass(frozen=True)
class Comparison:
    """A cell against the baseline (or one run against another) on the canaries both ran."""

    verdict: ComparisonVerdict
    delta: float  # cell pass rate minus baseline pass rate
    p_value: float  # two-sided Boschloo exact test, unpaired
    ci_low: float  # Newcombe hybrid score interval of delta
    ci_high: float
    base_passes: int
    base_n: int
    cell_passes: int
    cell_n: int
    canaries: int  # canaries both sides ran: more runs are added per canary
    repetitions: int  # the fewest runs any shared canary has on either side
    text: str


def compare_counts(
    base: tuple[int, int],
    cell: tuple[int, int],
    *,
    canaries: int = 1,
    repetitions: int | None = None,
    label: str = "cell",
    against: str = "baseline",
    note: str = "",
    alpha: float = ALPHA,
) -> Comparison:
    """Boschloo's test for the verdict, Newcombe's interval for the difference; both must agree to
    call one: a difference the test finds but the interval does not exclude stays 'no evidence'."""
    (base_passes, base_n), (cell_passes, cell_n) = base, cell
    reps = min(base_n, cell_n) // max(canaries, 1) if repetitions is None else repetitions
    p_value = boschloo(base_passes, base_n, cell_passes, cell_n)
    low, high = newcombe(base_passes, base_n, cell_passes, cell_n)
    delta = (cell_passes / cell_n if cell_n else 0.0) - (base_passes / base_n if base_n else 0.0)
    verdict: ComparisonVerdict = "no evidence of a difference"
    if p_value < alpha and low > 0:
        verdict = "better"
    elif p_value < alpha and high < 0:
        verdict = "worse"
    text = (
        f"{label} {cell_passes}/{cell_n} vs {against} {base_passes}/{base_n}: {verdict} "
        f"(difference {delta:+.2f}, 95% CI [{low:+.2f}, {high:+.2f}]; Boschloo exact p={p_value:.3g}, "
        f"unpaired{note})"
    )
    if reps < MIN_REPETITIONS:
        text += f"; {BELOW_MINIMUM} (N={reps})"
    return Comparison(
        verdict, delta, p_value, low, high, base_passes, base_n, cell_passes, cell_n, canaries, reps, text
    )


def compare_attempts(
    baseline: Sequence[Attempt], cell: Sequence[Attempt], label: str = "cell", against: str = "baseline"
) -> Comparison:
    """`compare_counts` over the canaries both sides ran (infra errors excluded).

    Several canaries pool only when each has the same number of runs on both sides; otherwise every
    canary keeps its first min(n_a, n_b) runs (by repetition number, fixed before any ran), so a
    canary run more often on one side cannot tip the pooled rate by its difficulty alone.
    """
    base_runs, cell_runs = runs_by_canary(baseline), runs_by_canary(cell)
    shared = sorted(base_runs.keys() & cell_runs.keys())
    balanced = len(shared) <= 1 or all(len(base_runs[c]) == len(cell_runs[c]) for c in shared)
    base_kept = [base_runs[c] if balanced else base_runs[c][: len(cell_runs[c])] for c in shared]
    cell_kept = [cell_runs[c] if balanced else cell_runs[c][: len(base_runs[c])] for c in shared]
    reps = min((min(len(b), len(c)) for b, c in zip(base_kept, cell_kept, strict=True)), default=0)
    note = "" if balanced else f", each canary cut to the runs both sides have (N>={reps})"
    if len(shared) > 1:
        note += f", pooled over {len(shared)} canaries"
    return compare_counts(
        (sum(map(sum, base_kept)), sum(map(len, base_kept))),
        (sum(map(sum, cell_kept)), sum(map(len, cell_kept))),
        canaries=len(shared),
        repetitions=reps,
        label=label,
        against=against,
        note=note,
    )


MAX_MORE_RUNS = 60  # per canary and side: beyond this, "more runs" is not a useful answer


def more_runs(comparison: Comparison, settled: Callable[[Comparison], bool]) -> int | None:
    """The fewest extra runs per canary and side after which `settled` holds, if both sides kept
    their observed pass rates; None when even MAX_MORE_RUNS would not do (the rates look alike)."""
    base_rate = comparison.base_passes / comparison.base_n if comparison.base_n else 0.0
    cell_rate = comparison.cell_passes / comparison.cell_n if comparison.cell_n else 0.0
    canaries = max(comparison.canaries, 1)
    for more in range(1, MAX_MORE_RUNS + 1):
        base_n, cell_n = comparison.base_n + canaries * more, comparison.cell_n + canaries * more
        projected = compare_counts(
            (round(base_rate * base_n), base_n), (round(cell_rate * cell_n), cell_n), canaries=canaries
        )
        if settled(projected):
            return more
    return None


Stratum = tuple[int, int, int, int]  # (passes now, runs now, passes before, runs before) of one canary


def stratified_lower_tail(strata: Sequence[Stratum]) -> float:
    """One-sided exact p that "now" passes less often than "before", stratified by canary.

    The conditional exact test of Cochran-Mantel-Haenszel: given each canary's margins, its passes now
    are hypergeometric under the null; the p-value is the lower tail of their sum (the convolution).
    With one canary this is Fisher's exact test. Each canary keeps its own difficulty, so canaries run
    more often in one run than the other cannot tip the result, and a history without spread (15/15)
    is a finite sample, not a certainty.
    """
    dist = [1.0]  # dist[t]: probability that the passes now sum to t over the canaries so far
    observed = 0
    for now_passes, now_n, old_passes, old_n in strata:
        total = now_passes + old_passes
        whole = math.comb(now_n + old_n, total)
        pmf = [
            math.comb(now_n, k) * math.comb(old_n, total - k) / whole if k <= total else 0.0
            for k in range(now_n + 1)
        ]
        dist = [
            sum(dist[t - k] * pmf[k] for k in range(len(pmf)) if 0 <= t - k < len(dist))
            for t in range(len(dist) + now_n)
        ]
        observed += now_passes
    return min(1.0, sum(dist[: observed + 1]))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values: the family-wise error stays at alpha over all checks, with more power
    than Bonferroni (the smallest p is multiplied by m, the next by m-1, kept monotone)."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
