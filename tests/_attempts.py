"""Constructed attempt records for the analysis tests: known truth, no run needed."""

from __future__ import annotations

from typing import Any

from pytest_agentloop.records import Attempt, Limit, Outcome


def attempt(
    outcome: Outcome | str = Outcome.PASSED,
    *,
    canary: str = "c1",
    cell: str = "baseline",
    model: str = "m",
    repetition: int = 0,
    tier: str = "lite",
    **fields: Any,
) -> Attempt:
    outcome = Outcome(outcome)
    if outcome is Outcome.BUDGET_EXCEEDED:
        fields.setdefault("limit", Limit.TURNS)
    return Attempt(
        canary=canary, tier=tier, model=model, cell=cell, repetition=repetition, outcome=outcome, **fields
    )


def runs(outcomes: str, **fields: Any) -> list[Attempt]:
    """One attempt per letter, repetitions 0..n-1: P passed, F failed, B budget_exceeded, I infra_error,
    N no_tool_calls."""
    letters = {"P": "passed", "F": "failed", "B": "budget_exceeded", "I": "infra_error", "N": "no_tool_calls"}
    return [attempt(letters[ch], repetition=i, **fields) for i, ch in enumerate(outcomes)]
