"""OFAT expansion: one factor per cell, readable ids, refusals that say why."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pytest_agentloop.canary import Canary, CanarySpec
from pytest_agentloop.cells import CellSettings
from pytest_agentloop.matrix import MatrixError, combined_cell, expand, load_matrix, probe_cells

CONFIG = """
[matrix]
baseline = { temperature = 0.3, reasoning = true }
factors = { temperature = [0.7, 0.3, 0.0], tool_mode = ["constrained"], directives = ["completeness"] }

[matrix.models."ollama:qwen3:30b"]
factors = { reasoning = [false], temperature = [0.6] }
"""


def _matrix(text: str = CONFIG) -> dict:
    return tomllib.loads(text)["matrix"]


def test_expand_shared_default_in_config_order() -> None:
    cells = expand("embedded:smollm2-135m", load_matrix(_matrix()))
    assert [c.id for c in cells] == [
        "baseline",
        "temperature=0.7",
        "temperature=0.0",  # 0.3 is the baseline's own value: skipped
        "tool_mode=constrained",
        "directives=completeness",
    ]
    base = cells[0].settings
    for cell in cells[1:]:
        differing = [f for f in CellSettings.model_fields if getattr(cell.settings, f) != getattr(base, f)]
        assert differing == [cell.factor]


def test_per_model_override_replaces_a_factor_and_adds_one() -> None:
    ids = [c.id for c in expand("ollama:qwen3:30b", load_matrix(_matrix()))]
    assert ids == [
        "baseline",
        "temperature=0.6",
        "tool_mode=constrained",
        "directives=completeness",
        "reasoning=off",
    ]
    assert ids == [c.id for c in expand("ollama:qwen3:30b", load_matrix(_matrix()))]  # deterministic


def test_dict_values_sweep_two_factors_and_are_refused() -> None:
    config = load_matrix({"factors": {"temperature": [{"temperature": 0.7, "top_p": 0.9}]}})
    with pytest.raises(MatrixError, match="could not be attributed"):
        expand("m", config)


def test_cell_spec_changing_two_fields_is_refused_and_one_field_is_accepted() -> None:
    with pytest.raises(MatrixError, match=r"temperature, top_p together.*could not be attributed"):
        expand("m", load_matrix({"cells": [{"temperature": 0.7, "top_p": 0.9}]}))
    cells = expand(
        "m", load_matrix({"baseline": {"top_p": 0.9}, "cells": [{"temperature": 0.7, "top_p": 0.9}]})
    )
    assert [c.id for c in cells] == ["baseline", "temperature=0.7"]


def test_unknown_factor_names_the_field_and_the_known_ones() -> None:
    with pytest.raises(MatrixError, match=r"unknown factor 'temprature'; known factors are temperature"):
        expand("m", load_matrix({"factors": {"temprature": [0.7]}}))


def test_bad_value_names_the_cell() -> None:
    with pytest.raises(MatrixError, match=r"temperature=5"):
        expand("m", load_matrix({"factors": {"temperature": [5]}}))
    with pytest.raises(MatrixError, match=r"matrix\] bogus"):
        load_matrix({"bogus": 1})


def test_combined_cell_switches_winners_on_together() -> None:
    cell = combined_cell({"temperature": 0.7, "directives": ["completeness"]}, CellSettings(reasoning=False))
    assert cell.id == "combined"
    assert cell.settings == CellSettings(temperature=0.7, directives=("completeness",), reasoning=False)
    with pytest.raises(MatrixError, match="unknown factor 'temp'"):
        combined_cell({"temp": 1.0}, CellSettings())


def _canary(tmp_path: Path, turns: int, tokens: int) -> Canary:
    spec = CanarySpec.model_validate(
        {
            "id": f"c{turns}",
            "tier": "lite",
            "title": "t",
            "spec": "s",
            "budget": {"turns": turns, "tokens": tokens},
        }
    )
    return Canary(spec=spec, root=tmp_path)


def test_probe_cells_double_the_largest_budget(tmp_path: Path) -> None:
    canaries = [_canary(tmp_path, 10, 5000), _canary(tmp_path, 20, 3000)]
    turns, tokens = probe_cells(CellSettings(), canaries)
    assert (turns.id, turns.settings.turns, turns.factor) == ("turns=x2", 40, "turns")
    assert (tokens.id, tokens.settings.tokens, tokens.settings.turns) == ("tokens=x2", 10000, None)
    assert probe_cells(CellSettings(turns=50), canaries)[0].settings.turns == 100
    assert probe_cells(CellSettings(), []) == []


def test_shipped_embedded_sweep_is_one_factor_per_cell() -> None:
    """examples/embedded-ofat.toml (the README's sweep) loads and expands to the four cells it promises."""
    from pytest_agentloop.config import build_settings, find_config_table

    example = Path(__file__).parents[1] / "examples" / "embedded-ofat.toml"
    table, source = find_config_table(example.parent, example)
    settings = build_settings(table, source, {})
    (model,) = settings.models
    cells = expand(model, load_matrix(settings.matrix))
    assert [c.id for c in cells] == ["baseline", "tool_mode=native", "turns=12", "tokens=10000"]
    assert (cells[0].settings.turns, cells[0].settings.tokens) == (6, 5000)
    assert settings.repeat == 3 and settings.prices == {"local": {"hourly": 0.3}}
