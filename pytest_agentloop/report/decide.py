"""The decide view: every model of the run ranked, one line each, at the end of the terminal output.

The ranking is `verdicts.decide`'s (deployable tiers first, then cost per pass); each line puts the
pass rate of the config it recommends, with its interval, beside what a pass costs, so a model that
is cheap per token but dear per pass shows as such.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pytest_agentloop.analysis.cost import Price
from pytest_agentloop.analysis.verdicts import cell_rollups, decide
from pytest_agentloop.records import Attempt


def format_cost(cost_per_pass: float | None) -> str:
    if cost_per_pass is None:
        return "no price"
    return "∞ per pass" if math.isinf(cost_per_pass) else f"${cost_per_pass:.4f}/pass"


def decide_lines(attempts: Iterable[Attempt], prices: Mapping[str, Price]) -> list[str]:
    """`1. MODEL  CELL  5/9 (56%, 95% CI 27%-81%)  $0.0120/pass  decision`, best first."""
    attempts = list(attempts)
    rollups = {(r.model, r.cell): r for r in cell_rollups(attempts)}
    rows = []
    for rank, decision in enumerate(decide(attempts, prices), start=1):
        rollup = rollups.get((decision.model, decision.cell))
        rate = rollup.describe() if rollup else "0/0"
        verdict = decision.text.removeprefix(f"{decision.model}: ")
        rows.append(
            (f"{rank}.", decision.model, decision.cell, rate, format_cost(decision.cost_per_pass), verdict)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)] if rows else []
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)) + "  " + row[5]
        for row in rows
    ]


def write_decide(terminalreporter: Any, attempts: Iterable[Attempt], prices: Mapping[str, Price]) -> None:
    lines = decide_lines(attempts, prices)
    if not lines:
        return
    terminalreporter.write_sep("-", "agentloop decide (models ranked)")
    for line in lines:
        terminalreporter.write_line(line)
