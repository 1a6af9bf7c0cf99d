"""CI gates: `--agent-gate "lite:pass_rate>=0.9"` decides the exit status instead of single canaries.

One flaky canary should not block a merge; a tier whose pass rate fell should. With gates given,
the run passes exactly when every gate holds for every model × cell, and each unmet gate is named
in the summary. Without gates, pytest's usual exit status applies untouched.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from pytest_agentloop.analysis.cost import Price, cost_rows
from pytest_agentloop.analysis.verdicts import cell_rollups
from pytest_agentloop.records import Attempt

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
}
METRICS = ("pass_rate", "ci_low", "ci_high", "passes", "n", "pass_hat_3", "cost_per_pass")
GATE_RE = re.compile(
    r"^\s*(?P<scope>[\w.\-]+)\s*:\s*(?P<metric>\w+)\s*(?P<op>>=|<=|==|>|<)\s*(?P<value>[^\s]+)\s*$"
)
USAGE = (
    "write SCOPE:METRIC OP NUMBER, e.g. --agent-gate='lite:pass_rate>=0.9'; SCOPE is a tier, a canary id "
    f"or 'all'; METRIC is one of {', '.join(METRICS)}; OP is one of {', '.join(OPERATORS)}"
)


class GateError(ValueError):
    """A gate expression that cannot be read; the message says how to write one."""


@dataclass(frozen=True)
class Gate:
    scope: str  # a tier, a canary id, or "all"
    metric: str
    op: str
    threshold: float
    text: str

    def selects(self, attempt: Attempt) -> bool:
        return self.scope in ("all", attempt.tier, attempt.canary)


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    model: str | None  # None: nothing matched the scope at all
    cell: str | None
    value: float | None
    met: bool
    detail: str

    def describe(self) -> str:
        where = f"{self.model} · {self.cell}" if self.model else "no attempt"
        return f"{'met' if self.met else 'UNMET'}  {self.gate.text}  [{where}] {self.detail}"


def parse_gate(text: str) -> Gate:
    match = GATE_RE.match(text)
    if not match:
        raise GateError(f"gate {text!r} is not readable: {USAGE}")
    metric = match["metric"]
    if metric not in METRICS:
        raise GateError(f"gate {text!r} names unknown metric {metric!r}: {USAGE}")
    try:
        threshold = float(match["value"])
    except ValueError:
        raise GateError(f"gate {text!r}: {match['value']!r} is not a number: {USAGE}") from None
    return Gate(match["scope"], metric, match["op"], threshold, text.strip())


def evaluate(
    gates: Sequence[Gate], attempts: Iterable[Attempt], prices: Mapping[str, Price]
) -> list[GateResult]:
    """Every gate against every model × cell that has attempts in its scope."""
    attempts = list(attempts)
    results = []
    for gate in gates:
        selected = [a for a in attempts if gate.selects(a)]
        rollups = cell_rollups(selected)
        if not rollups:
            results.append(
                GateResult(gate, None, None, None, False, f"no attempt matched scope {gate.scope!r}")
            )
        for rollup in rollups:
            own = [a for a in selected if (a.model, a.cell) == (rollup.model, rollup.cell)]
            value = _metric(gate.metric, rollup, own, prices)
            results.append(_judge(gate, rollup, value))
    return results


def _metric(metric: str, rollup: Any, attempts: list[Attempt], prices: Mapping[str, Price]) -> float | None:
    if metric == "cost_per_pass":
        rows = cost_rows(attempts, prices)  # one model's attempts: at most one row
        return rows[0].cost_per_pass if rows else None
    value = getattr(rollup, metric)
    return None if value is None else float(value)


def _judge(gate: Gate, rollup: Any, value: float | None) -> GateResult:
    counts = f"({rollup.passes}/{rollup.n} passed)"
    if value is None:
        why = "no price configured" if gate.metric == "cost_per_pass" else "not measurable on these runs"
        return GateResult(gate, rollup.model, rollup.cell, None, False, f"{gate.metric} {why} {counts}")
    shown = "inf" if math.isinf(value) else f"{value:.3g}"
    met = OPERATORS[gate.op](value, gate.threshold)
    return GateResult(gate, rollup.model, rollup.cell, value, met, f"{gate.metric}={shown} {counts}")


class GatePlugin:
    """Sets the exit status from the gates once every attempt is in (on the controller)."""

    def __init__(
        self, gates: Sequence[Gate], attempts: Callable[[], list[Attempt]], prices: Mapping[str, Price]
    ) -> None:
        self.gates = gates
        self.attempts = attempts
        self.prices = prices
        self.results: list[GateResult] = []

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if session.exitstatus not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            return  # an interrupted or broken run is not for the gates to excuse
        self.results = evaluate(self.gates, self.attempts(), self.prices)
        met = all(result.met for result in self.results)
        session.exitstatus = pytest.ExitCode.OK if met else pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        unmet = [r for r in self.results if not r.met]
        terminalreporter.write_sep("=", f"agentloop gates: {len(unmet)} unmet of {len(self.results)}")
        for result in self.results:
            terminalreporter.write_line(result.describe(), red=not result.met, green=result.met)
        if not unmet:
            terminalreporter.write_line("all gates met: individual canary failures do not fail this run")


def parse_gates(texts: Sequence[str]) -> list[Gate]:
    """All `--agent-gate` values, or a usage error naming the bad one."""
    try:
        return [parse_gate(text) for text in texts]
    except GateError as exc:
        raise pytest.UsageError(f"agentloop: {exc}") from None
