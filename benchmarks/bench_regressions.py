"""Regression detection by simulation: false alarms on an unchanged model, and a real drop caught.

Targets (issue 13): a false REGRESSION on an unchanged model in at most 5% of runs over the whole
suite, and a real drop from 90% to 50% on one tier caught in at least 80% of runs.

The suite has the built-in canaries' shape (tiers and counts read from canaries/); every canary has a
true pass rate, some at 100% (a history with no spread at all). Each simulated run checks a fresh
current run against a fresh history through the real `find_regressions`.

Run: `python benchmarks/bench_regressions.py [--trials 2000] [--history 5] [--repeat 3]`.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from pytest_agentloop.analysis.regressions import RunRate, find_regressions
from pytest_agentloop.records import Attempt, Outcome

CANARIES = Path(__file__).resolve().parent.parent / "canaries"
RATES = (1.0, 0.9, 1.0, 0.8, 0.95, 0.6, 1.0, 0.9, 0.7, 1.0, 0.85, 0.5, 0.9, 1.0, 0.75)  # dealt in turn
MODEL, CELL = "sim", "baseline"


def suite() -> list[tuple[str, str, float]]:
    """(canary, tier, true pass rate) for the built-in suite's shape."""
    found = sorted((path.parent.parent.name, path.parent.name) for path in CANARIES.glob("*/*/canary.toml"))
    return [(canary, tier, RATES[i % len(RATES)]) for i, (tier, canary) in enumerate(found)]


def simulate(
    canaries: list[tuple[str, str, float]], rng: random.Random, history: int, repeat: int, drop: str | None
) -> set[str]:
    """The tiers one simulated run flags; `drop` names a tier whose 90% canaries now pass 50%."""
    earlier: dict[tuple[str, str, str], list[RunRate]] = {}
    attempts = []
    for canary, tier, rate in canaries:
        earlier[(MODEL, CELL, canary)] = [
            RunRate(f"r{i}", "", sum(rng.random() < rate for _ in range(repeat)), repeat)
            for i in range(history)
        ]
        now = 0.5 if tier == drop else rate
        attempts += [
            Attempt(
                canary=canary,
                tier=tier,
                model=MODEL,
                cell=CELL,
                repetition=r,
                outcome=Outcome.PASSED if rng.random() < now else Outcome.FAILED,
            )
            for r in range(1, repeat + 1)
        ]
    return {r.scope.removeprefix("tier ") for r in find_regressions(attempts, earlier)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--history", type=int, default=5, help="earlier runs in the store")
    parser.add_argument("--repeat", type=int, nargs="+", default=[3, 4, 5], help="repetitions per canary")
    parser.add_argument("--tier", default="lite", help="the tier whose pass rate drops to 50%%")
    args = parser.parse_args()
    canaries = suite()
    dropped = [(c, t, 0.9) if t == args.tier else (c, t, r) for c, t, r in canaries]
    in_tier = sum(t == args.tier for _, t, _ in canaries)
    tiers = sorted({t for _, t, _ in canaries})
    print(
        f"suite: {len(canaries)} canaries in {len(tiers)} tiers ({', '.join(tiers)}); {args.history} earlier "
        f"runs; {args.trials} simulated runs a figure; drop: the {in_tier} canaries of {args.tier} 90% -> 50%"
    )
    print(f"{'N':>3}  {'false REGRESSION, unchanged model':>34}  {'drop caught on ' + args.tier:>22}")
    for repeat in args.repeat:
        rng = random.Random(20261204 + repeat)
        false = sum(bool(simulate(canaries, rng, args.history, repeat, None)) for _ in range(args.trials))
        caught = sum(
            args.tier in simulate(dropped, rng, args.history, repeat, args.tier) for _ in range(args.trials)
        )
        print(f"{repeat:>3}  {false / args.trials:>34.1%}  {caught / args.trials:>22.1%}")
    print("targets: false REGRESSION <= 5% over the whole suite; a 90% -> 50% drop caught >= 80%")


if __name__ == "__main__":
    main()
