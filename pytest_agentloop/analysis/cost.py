"""Cost per pass, not per token: a cheap model that needs three tries costs more than it looks.

Cloud models are priced per million input / output / cached-input tokens; local models by a
configured hourly cost of the machine times the time the model was busy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pytest_agentloop.analysis.diagnosis import group
from pytest_agentloop.analysis.facts import facts_of
from pytest_agentloop.analysis.stats import scored
from pytest_agentloop.records import Attempt, Outcome


class Price(BaseModel):
    """One model's price: `input = 0.4, output = 1.6` (cloud) or `hourly = 0.3` (local machine)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float | None = Field(None, ge=0)  # per million prompt tokens
    output: float | None = Field(None, ge=0)  # per million completion tokens
    cached_input: float | None = Field(None, ge=0)  # per million cached prompt tokens (default: input)
    hourly: float | None = Field(None, ge=0)  # local: cost of the machine per hour of model time

    @model_validator(mode="after")
    def _one_kind(self) -> Price:
        per_token = self.input is not None or self.output is not None
        if per_token == (self.hourly is not None):
            raise ValueError("set either input/output (per million tokens) or hourly, not both or neither")
        return self


def attempt_cost(attempt: Attempt, price: Price) -> float:
    """What one attempt cost; cached tokens are read from the transcript when it was kept."""
    if price.hourly is not None:
        seconds = attempt.model_s or attempt.wall_s
        return price.hourly * seconds / 3600
    facts = facts_of(attempt)
    cached = facts.cached_tokens if facts is not None else 0
    fresh = (attempt.prompt_tokens or 0) - cached  # None: tokens not reported, priced as none
    cached_rate = price.cached_input if price.cached_input is not None else price.input or 0.0
    per_million = (
        fresh * (price.input or 0.0)
        + cached * cached_rate
        + (attempt.completion_tokens or 0) * (price.output or 0.0)
    )
    return per_million / 1_000_000


@dataclass(frozen=True)
class CostRow:
    model: str
    cost: float | None  # None: no price configured
    passes: int
    n: int

    @property
    def pass_rate(self) -> float:
        return self.passes / self.n if self.n else 0.0

    @property
    def cost_per_pass(self) -> float | None:
        if self.cost is None:
            return None
        return self.cost / self.passes if self.passes else math.inf

    def describe(self) -> str:
        if self.cost_per_pass is None:
            return f'no price configured for {self.model}: add [prices."{self.model}"]'
        if math.isinf(self.cost_per_pass):
            return f"${self.cost:.4f} spent, no pass: cost per pass is infinite"
        return f"${self.cost_per_pass:.4f} per pass (${self.cost:.4f} for {self.passes}/{self.n} passes)"


def cost_rows(attempts: Iterable[Attempt], prices: Mapping[str, Price]) -> list[CostRow]:
    """Models ranked by cost per pass (cheapest first, unpriced last), infra errors excluded on both sides."""
    rows = []
    for (model,), own in group(scored(attempts), "model").items():
        price = prices.get(model)
        cost = None if price is None else sum(attempt_cost(a, price) for a in own)
        rows.append(CostRow(model, cost, sum(a.outcome is Outcome.PASSED for a in own), len(own)))
    return sorted(rows, key=lambda r: (r.cost_per_pass is None, r.cost_per_pass or 0.0, -r.pass_rate))
