"""A config cell: the settings one column of the tuning matrix runs with.

The baseline cell is the per-model default; every other cell differs from it in one factor
(one-factor-at-a-time). The matrix expansion lives in `matrix.py`; this module only says what a
cell is, so the agent loop and the records can depend on it without depending on the matrix.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ToolMode = Literal["native", "prompted", "constrained"]


class CellSettings(BaseModel):
    """Every factor the methodology tunes. `None` means: leave it to the runtime / the canary."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float | None = Field(None, ge=0, le=2)  # sampling temperature (0 is still not deterministic)
    top_p: float | None = Field(None, gt=0, le=1)  # nucleus sampling
    seed: int | None = None  # sampler seed, where the runtime honours one
    reasoning: bool | None = None  # thinking on/off where the runtime has a switch
    echo_reasoning: bool = False  # send earlier reasoning back to the model, or strip it
    turns: int | None = Field(None, ge=1)  # overrides the canary's turn budget
    tokens: int | None = Field(None, ge=100)  # overrides the canary's token budget
    max_response_tokens: int = Field(1024, ge=16)  # the cap on each reply (max_tokens of every request)
    directives: tuple[str, ...] = ()  # names of prompt additions (see agent/prompts.py)
    # native: the runtime parses calls; prompted: schemas in the prompt, calls parsed from text;
    # constrained: prompted plus JSON-schema constrained decoding where the runtime offers it.
    tool_mode: ToolMode = "native"


class Cell(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str  # readable and id-safe: "baseline", "temperature=0.7", "tool_mode=constrained"
    settings: CellSettings = CellSettings()
    factor: str | None = None  # the one factor this cell changes from the baseline

    def config(self) -> dict[str, Any]:
        return self.settings.model_dump(mode="json")


BASELINE = Cell(id="baseline")
