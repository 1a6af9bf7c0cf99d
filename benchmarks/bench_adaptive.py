"""Adaptive repetition against fixed N: attempts used and decisions that agree with the truth.

Simulated cells of known truth (a baseline and a cell on one canary, each with a true pass rate) run
round by round up to N=9 with `analysis.adaptive.comparison_settled` deciding when to stop, against
the same cells run to a fixed N=9. A decision agrees with the truth when it calls "better"/"worse"
where the rates differ by at least TRUE_GAP, and "no evidence of a difference" where they are equal;
between the two, either answer is accepted. Targets (issue 15): at most 60% of the attempts, and no
more wrong decisions than fixed N.

The truths mix what an OFAT sweep meets: most factors change nothing (both cells at 0%, 100% or in
between), some help a lot, some a little, some hurt.

Run: `python benchmarks/bench_adaptive.py [--trials 400] [--most 9]`. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random

from pytest_agentloop.analysis.adaptive import comparison_settled, threshold_settled
from pytest_agentloop.analysis.stats import compare_counts

TRUE_GAP = 0.5
# (baseline rate, cell rate, share of cells like this)
TRUTHS = [
    (0.0, 0.0, 0.20),
    (1.0, 1.0, 0.15),
    (0.9, 0.9, 0.10),
    (0.5, 0.5, 0.10),
    (0.2, 0.2, 0.05),
    (0.0, 1.0, 0.10),
    (0.1, 0.9, 0.10),
    (0.3, 0.9, 0.05),
    (0.9, 0.1, 0.05),
    (0.5, 0.7, 0.05),
    (0.6, 0.9, 0.05),
]


def truth(base: float, cell: float) -> str | None:
    if base == cell:
        return "no evidence of a difference"
    if abs(cell - base) >= TRUE_GAP:
        return "better" if cell > base else "worse"
    return None  # a small difference: either answer is fair at this N


MODES = ("fixed", "curtailment", "adaptive")  # adaptive: curtailment and futility, as the plugin runs


def run(draws: list[tuple[bool, bool]], mode: str) -> tuple[str, int]:
    """(decision, attempts used) for one baseline + cell pair whose runs come out as `draws`."""
    most = len(draws)
    b = c = 0
    for runs, (b_passed, c_passed) in enumerate(draws, start=1):
        b, c = b + b_passed, c + c_passed
        settled = comparison_settled((b, runs), (c, runs), most) if mode != "fixed" else None
        if settled is not None and (mode == "adaptive" or settled.rule == "curtailment"):
            return settled.decision, 2 * runs
    return compare_counts((b, most), (c, most)).verdict, 2 * most


def lone(rate: float, most: int, rng: random.Random) -> int:
    """Attempts a lone baseline uses against the deploy bar."""
    passes = 0
    for runs in range(1, most + 1):
        passes += rng.random() < rate
        if threshold_settled((passes, runs), most) is not None:
            return runs
    return most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=1000, help="simulated cells per truth")
    parser.add_argument("--most", type=int, default=9, help="the maximum (and fixed) N")
    args = parser.parse_args()
    print(
        f"{'baseline':>8} {'cell':>5} {'share':>5}  {'attempts adaptive/fixed':>23}  "
        f"{'wrong fixed':>11}  {'wrong adaptive':>14}"
    )
    total = {key: 0.0 for mode in MODES for key in (mode, f"wrong {mode}")}
    for base, cell, share in TRUTHS:
        rows = {}
        rng = random.Random(f"{base}-{cell}")
        trials = [
            [(rng.random() < base, rng.random() < cell) for _ in range(args.most)] for _ in range(args.trials)
        ]
        for mode in MODES:  # the same runs for every mode: adaptive only stops them earlier
            results = [run(draws, mode) for draws in trials]
            used = sum(n for _, n in results) / args.trials
            wrong = sum(truth(base, cell) not in (None, d) for d, _ in results) / args.trials
            rows[mode] = (used, wrong)
            total[mode] += share * used
            total[f"wrong {mode}"] += share * wrong
        print(
            f"{base:>8.0%} {cell:>5.0%} {share:>5.0%}  "
            f"{rows['adaptive'][0]:>11.1f} / {rows['fixed'][0]:<9.0f}  "
            f"{rows['fixed'][1]:>11.1%}  {rows['adaptive'][1]:>14.1%}"
        )
    for mode in MODES[1:]:
        print(
            f"weighted, {mode}: attempts {total[mode] / total['fixed']:.1%} of fixed N={args.most}; wrong "
            f"decisions {total['wrong fixed']:.2%} fixed vs {total[f'wrong {mode}']:.2%} "
            "(targets: <= 60%, no more wrong)"
        )
    rng = random.Random(7)
    for rate in (0.0, 0.5, 0.9, 1.0):
        used = sum(lone(rate, args.most, rng) for _ in range(args.trials)) / args.trials
        print(
            f"lone baseline at {rate:.0%} against the 80% bar: {used:.1f} of {args.most} runs "
            "(curtailment only)"
        )


if __name__ == "__main__":
    main()
