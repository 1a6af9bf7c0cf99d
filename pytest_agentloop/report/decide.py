"""The decide view: every model of the run ranked, one line each, at the end of the terminal output.

The ranking is `verdicts.decide`'s: pass rate of the recommended settings first, models the exact
test cannot tell apart share a rank ("2="), ordered by cost per pass. Each line puts that pass rate,
with its interval (marked when a canary ran fewer than the minimum N), beside what a pass costs, so a
model that is cheap per token but dear per pass shows as such.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_agentloop.analysis.cost import Price
from pytest_agentloop.analysis.stats import MIN_REPETITIONS, runs_by_canary
from pytest_agentloop.analysis.verdicts import decide
from pytest_agentloop.records import Attempt


def format_cost(cost_per_pass: float | None) -> str:
    if cost_per_pass is None:
        return "no price"
    return "∞ per pass" if math.isinf(cost_per_pass) else f"${cost_per_pass:.4f}/pass"


def decide_lines(attempts: Iterable[Attempt], prices: Mapping[str, Price]) -> list[str]:
    """`1.  MODEL  SETTINGS  5/9 (56%, 95% CI 27%-81%)  $0.0120/pass  decision`, best first; ties "1=".

    A rate from canaries run fewer than the methodology's minimum N carries "(N<3)".
    """
    attempts = list(attempts)
    rows = []
    for decision in decide(attempts, prices):
        rollup = decision.rollup
        rate = rollup.describe() if rollup else "0/0"
        if rollup is not None and _fewest_runs(attempts, decision.model, decision.cell) < MIN_REPETITIONS:
            rate += f" (N<{MIN_REPETITIONS})"
        verdict = decision.text.removeprefix(f"{decision.model}: ")
        rows.append(
            (
                decision.rank,
                decision.model,
                decision.settings,
                rate,
                format_cost(decision.cost_per_pass),
                verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)] if rows else []
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)) + "  " + row[5]
        for row in rows
    ]


def _fewest_runs(attempts: list[Attempt], model: str, cell: str) -> int:
    own = runs_by_canary(a for a in attempts if (a.model, a.cell) == (model, cell))
    return min(map(len, own.values()), default=0)


def write_decide(terminalreporter: Any, attempts: Iterable[Attempt], prices: Mapping[str, Price]) -> None:
    lines = decide_lines(attempts, prices)
    if not lines:
        return
    terminalreporter.write_sep("-", "agentloop decide (models ranked)")
    for line in lines:
        terminalreporter.write_line(line)
