"""The tuning matrix: a per-model baseline plus one cell per alternative value of one factor (OFAT).

One factor at a time is the methodology's rule: a cell that changes two settings could not say which
one made the difference. Winners are confirmed together afterwards in the `combined` cell.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_agentloop.canary import Canary
from pytest_agentloop.cells import BASELINE, Cell, CellSettings

FACTORS: tuple[str, ...] = tuple(CellSettings.model_fields)
_ID_SAFE = re.compile(r"^[A-Za-z0-9_.+=-]+$")


class MatrixError(ValueError):
    """A matrix config that cannot be expanded; the message names the field and the fix."""


class MatrixSpec(BaseModel):
    """What `[matrix]` and each `[matrix.models."SPEC"]` may say."""

    model_config = ConfigDict(extra="forbid")

    baseline: dict[str, Any] = Field(default_factory=dict)  # CellSettings fields
    factors: dict[str, list[Any]] = Field(default_factory=dict)  # factor -> alternative values
    cells: list[dict[str, Any]] = Field(default_factory=list)  # extra one-field cells, e.g. {tokens = 8000}


class MatrixConfig(MatrixSpec):
    """The shared default plus per-model overrides, merged key by key (the model's entry wins)."""

    models: dict[str, MatrixSpec] = Field(default_factory=dict)  # [matrix.models."SPEC"]: overrides

    def for_model(self, model_spec: str) -> MatrixSpec:
        own = self.models.get(model_spec, MatrixSpec())
        return MatrixSpec(
            baseline={**self.baseline, **own.baseline},
            factors={**self.factors, **own.factors},
            cells=[*self.cells, *own.cells],
        )


def load_matrix(data: dict[str, Any]) -> MatrixConfig:
    """Validate the `[matrix]` table, turning pydantic's report into one actionable line."""
    try:
        return MatrixConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise MatrixError(f"[matrix] {where}: {error['msg']}.") from None


def baseline_settings(spec: MatrixSpec, model_spec: str = "") -> CellSettings:
    _check_factor_names(spec.baseline, f"[matrix{_section(model_spec)}.baseline]")
    return _settings(spec.baseline, f"baseline of {model_spec or 'the matrix'}")


def expand(model_spec: str, config: MatrixConfig) -> list[Cell]:
    """The baseline first, then one cell per (factor, value) in config order, each differing in one field."""
    spec = config.for_model(model_spec)
    base = baseline_settings(spec, model_spec)
    where = f"[matrix{_section(model_spec)}"
    _check_factor_names(spec.factors, f"{where}.factors]")
    changes: list[tuple[str, Any]] = []
    for factor, values in spec.factors.items():
        for value in values:
            if isinstance(value, dict):
                raise MatrixError(
                    f"{where}.factors] {factor}: value {value} sets several fields at once; OFAT sweeps one "
                    "factor per cell (a difference could not be attributed), so list plain values only."
                )
            changes.append((factor, value))
    for cell_spec in spec.cells:
        _check_factor_names(cell_spec, f"{where}.cells]")
        changed = {k: v for k, v in cell_spec.items() if _differs(base, k, v)}
        if len(changed) > 1:
            raise MatrixError(
                f"{where}.cells] {cell_spec} changes {', '.join(sorted(changed))} together; OFAT allows one "
                "field per cell (a difference could not be attributed): split it into one cell per field."
            )
        changes.extend(changed.items())
    cells = [Cell(id=BASELINE.id, settings=base)]
    seen = {BASELINE.id}
    for factor, value in changes:
        settings = _settings({**base.model_dump(), factor: value}, f"{where}] {factor}={value!r}")
        if getattr(settings, factor) == getattr(base, factor):
            continue  # the baseline already runs this value
        cell_id = f"{factor}={_render(getattr(settings, factor), factor)}"
        if cell_id not in seen:
            cell = Cell(id=cell_id, settings=settings, factor=factor)
            seen.add(cell.id)
            cells.append(cell)
    return cells


def combined_cell(winners: dict[str, Any], baseline: CellSettings) -> Cell:
    """The final confirmation cell: every per-factor winner switched on together."""
    _check_factor_names(winners, "combined cell")
    return Cell(id="combined", settings=_settings({**baseline.model_dump(), **winners}, "combined cell"))


def probe_cells(baseline: CellSettings, canaries_over_budget: Sequence[Canary]) -> list[Cell]:
    """Doubled turn and token budgets for `--agent-diagnose`: tells a turn from a token ceiling.

    A cell's budget applies to every canary, so each probe doubles the largest effective budget
    among the canaries that ran out.
    """
    if not canaries_over_budget:
        return []
    probes = []
    for factor in ("turns", "tokens"):
        largest = max(
            getattr(baseline, factor) or getattr(c.spec.budget, factor) for c in canaries_over_budget
        )
        settings = baseline.model_copy(update={factor: 2 * largest})
        probes.append(Cell(id=f"{factor}=x2", settings=settings, factor=factor))
    return probes


def _check_factor_names(fields: dict[str, Any], where: str) -> None:
    unknown = sorted(set(fields) - set(FACTORS))
    if unknown:
        raise MatrixError(f"{where}: unknown factor '{unknown[0]}'; known factors are {', '.join(FACTORS)}.")


def _differs(base: CellSettings, field: str, value: Any) -> bool:
    changed = _settings({**base.model_dump(), field: value}, f"[matrix.cells] {field}")
    return bool(getattr(changed, field) != getattr(base, field))


def _settings(fields: dict[str, Any], where: str) -> CellSettings:
    if isinstance(fields.get("directives"), str):
        fields = {**fields, "directives": (fields["directives"],)}
    try:
        return CellSettings.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        raise MatrixError(f"{where}: {field}: {error['msg']}.") from None


def _render(value: Any, factor: str) -> str:
    """Readable, id-safe text for a factor value: on/off, 0.7, completeness+pre-push, default."""
    if value is None:
        text = "default"
    elif isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, tuple):
        text = "+".join(value) or "none"
    else:
        text = str(value)
    if not _ID_SAFE.match(text):
        raise MatrixError(
            f"[matrix] {factor}={text!r}: use letters, digits and . _ + - only, so the cell id is safe."
        )
    return text


def _section(model_spec: str) -> str:
    return f'.models."{model_spec}"' if model_spec else ""
