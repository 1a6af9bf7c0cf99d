"""The second step of tuning: what an earlier results file says to run next.

Collection happens before any attempt runs, so the combined cell (`--agent-combine=PATH`) and the
ceiling probes (`--agent-diagnose=PATH`) are planned from a finished run's results file:

1. `pytest canaries/ --agent-model=M --repeat=3 --agent-json=ofat.json`   (baseline + OFAT factors)
2. `pytest canaries/ --agent-model=M --repeat=3 --agent-combine=ofat.json` (baseline + combined)
   `pytest canaries/ --agent-model=M --repeat=3 --agent-diagnose=ofat.json` (adds turns=x2, tokens=x2
   and turns+tokens=x2 for exactly the canaries whose baseline ran out of budget)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pytest_agentloop.analysis.cost import Price
from pytest_agentloop.analysis.diagnosis import group
from pytest_agentloop.analysis.stats import MIN_REPETITIONS, Comparison, scored
from pytest_agentloop.analysis.verdicts import comparisons
from pytest_agentloop.canary import Canary
from pytest_agentloop.cells import BASELINE, Cell
from pytest_agentloop.matrix import FACTORS, combined_cell, probe_cells
from pytest_agentloop.records import Attempt, Outcome
from pytest_agentloop.results import load_results

LOCAL_PRICE = "local"  # [prices.local]: this machine's hourly cost, for local models without their own
LOCAL_BACKENDS = ("embedded", "llamacpp", "ollama", "lmstudio", "vllm")


class TuningError(ValueError):
    """A results file or price table that cannot drive the run; the message names it and the fix."""


def prices_from_settings(raw: Mapping[str, Any], models: Sequence[str]) -> dict[str, Price]:
    """`[prices."SPEC"]` tables as Prices; `[prices.local]` covers every local model not priced itself."""
    prices: dict[str, Price] = {}
    for spec, table in raw.items():
        try:
            prices[spec] = Price.model_validate(table)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"]) or "price"
            raise TuningError(
                f'[prices."{spec}"] {where}: {error["msg"]}; write input/output per million tokens '
                "(cloud) or hourly (local machine)."
            ) from None
    local = prices.pop(LOCAL_PRICE, None)
    if local is not None:
        for model in models:
            if model.split(":", 1)[0] in LOCAL_BACKENDS:
                prices.setdefault(model, local)
    return prices


@dataclass(frozen=True)
class Winner:
    factor: str
    value: Any
    comparison: Comparison


def cell_factor(attempt: Attempt) -> str | None:
    """The factor an OFAT or probe cell changed (`temperature=0.7` -> temperature); None for the rest."""
    name = attempt.cell.split("=", 1)[0]
    return name if "=" in attempt.cell and name in FACTORS and name in attempt.cell_config else None


def factor_winners(attempts: Sequence[Attempt]) -> dict[str, Winner]:
    """Per factor, the value that beat the baseline on the exact test at the methodology's N, if any.

    A cell whose comparison says `better` below N=3 is not taken: that is the evidence the stats
    module refuses to call. Two winning values of one factor: the larger improvement wins.
    """
    first = {a.cell: a for a in attempts}
    winners: dict[str, Winner] = {}
    for cell, comparison in comparisons(attempts).items():
        factor = cell_factor(first[cell])
        if factor is None or comparison.verdict != "better" or comparison.repetitions < MIN_REPETITIONS:
            continue
        held = winners.get(factor)
        if held is None or comparison.delta > held.comparison.delta:
            winners[factor] = Winner(factor, first[cell].cell_config[factor], comparison)
    return dict(sorted(winners.items()))


def over_budget(attempts: Sequence[Attempt]) -> set[str]:
    """Canaries whose baseline attempts ran out of a budget at least once: the ones worth probing."""
    return {
        a.canary for a in scored(attempts) if a.cell == BASELINE.id and a.outcome is Outcome.BUDGET_EXCEEDED
    }


@dataclass
class TuningPlan:
    """What the earlier results files ask of this run, per model, and notes for the terminal."""

    combine_from: Path | None = None
    winners: dict[str, dict[str, Winner]] = field(default_factory=dict)
    probe: dict[str, set[str]] | None = None  # model -> canary ids; None: not diagnosing
    notes: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, combine: Path | None, diagnose: Path | None, models: Sequence[str]) -> TuningPlan:
        plan = cls(combine_from=combine)
        if combine is not None:
            by_model = _attempts_by_model(combine)
            for model in models:
                plan.winners[model] = factor_winners(by_model.get(model, []))
                plan.notes.append(_combine_note(model, combine, plan.winners[model], model in by_model))
        if diagnose is not None:
            by_model = _attempts_by_model(diagnose)
            plan.probe = {model: over_budget(by_model.get(model, [])) for model in models}
            for model, canaries in plan.probe.items():
                listed = ", ".join(sorted(canaries)) or "none: no baseline attempt ran out of budget"
                plan.notes.append(
                    f"{model}: probing turns=x2, tokens=x2 and turns+tokens=x2 for {listed} (from {diagnose})"
                )
        return plan

    def cells(self, model: str, matrix_cells: list[Cell], canary: Canary | None) -> list[Cell]:
        """The matrix's cells, or baseline + combined when combining, plus this canary's probes."""
        baseline = matrix_cells[0]
        cells = matrix_cells
        if self.combine_from is not None:
            chosen = {w.factor: w.value for w in self.winners.get(model, {}).values()}
            cells = [baseline, combined_cell(chosen, baseline.settings)] if chosen else [baseline]
        if self.probe is not None and canary is not None and canary.id in self.probe.get(model, set()):
            cells = [*cells, *with_both_raised(probe_cells(baseline.settings, [canary]))]
        return cells


def with_both_raised(probes: list[Cell]) -> list[Cell]:
    """The turn and token probes plus one raising both: only that cell can show a capability ceiling
    (each single raise may stop on the other budget, which says nothing about capability)."""
    raised = {cell.factor: cell.settings for cell in probes}
    if set(raised) != {"turns", "tokens"}:
        return probes
    both = raised["turns"].model_copy(update={"tokens": raised["tokens"].tokens})
    return [*probes, Cell(id="turns+tokens=x2", settings=both)]


def _attempts_by_model(path: Path) -> dict[str, list[Attempt]]:
    try:
        _, attempts = load_results(path)
    except ValueError as exc:
        raise TuningError(f"{exc}; pass the --agent-json file of an earlier run.") from None
    return {model: runs for (model,), runs in group(attempts, "model").items()}


def _combine_note(model: str, path: Path, winners: Mapping[str, Winner], present: bool) -> str:
    if not present:
        return f"{model}: no attempts in {path}; run the OFAT sweep first. Only the baseline runs."
    if not winners:
        return (
            f"{model}: no factor beat the baseline with enough evidence in {path} "
            f"(an exact test at N>={MIN_REPETITIONS}); no combined cell, only the baseline runs."
        )
    values = ", ".join(f"{w.factor}={w.value}" for w in winners.values())
    evidence = "; ".join(w.comparison.text for w in winners.values())
    return f"{model}: combined cell = {values} ({evidence})"
