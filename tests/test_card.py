"""Summaries, decisions and the finding card, from constructed attempts."""

from __future__ import annotations

from pathlib import Path

from _attempts import runs

from pytest_agentloop.analysis.cost import Price
from pytest_agentloop.analysis.verdicts import below_minimum, cell_rollups, decide, summarize, tier_rollups
from pytest_agentloop.records import Limit
from pytest_agentloop.report.card import render_card, write_cards

PRICES = {"ollama:good": Price(hourly=1.0)}
TURNS_X2 = {"cell": "turns=x2", "cell_config": {"turns": 60}}


def _good_model() -> list:
    base = runs("BBBBBBBP", model="ollama:good", canary="heavy", tier="heavy", model_s=36.0, turns=30)
    base += runs("PPPPPPPI", model="ollama:good", canary="easy", tier="lite", model_s=36.0, turns=4)
    fixed = runs("PPPPPPPP", model="ollama:good", canary="heavy", tier="heavy", turns=40, **TURNS_X2)
    fixed += runs("PPPPPPPP", model="ollama:good", canary="easy", tier="lite", turns=4, **TURNS_X2)
    return base + fixed


def test_summary_rows_exclude_infra_errors_and_carry_the_diagnosis() -> None:
    rows = {(r.cell, r.canary): r for r in summarize(_good_model())}
    easy = rows[("baseline", "easy")]
    assert (easy.passes, easy.n, easy.infra_errors, easy.mean_turns_to_pass) == (7, 7, 1, 4.0)
    heavy = rows[("baseline", "heavy")]
    assert heavy.budget_exceeded == 7 and heavy.budget_exceeded_by_limit == {str(Limit.TURNS): 7}
    assert heavy.diagnosis.startswith("turn ceiling")
    assert rows[("turns=x2", "heavy")].pass_hat_3 == 1.0
    assert {(r.cell, r.n) for r in cell_rollups(_good_model())} == {("baseline", 15), ("turns=x2", 16)}
    assert len(tier_rollups(_good_model())) == 4


def test_decisions_rank_models_and_say_why() -> None:
    dead = runs("NNN", model="ollama:dead", turns=1)
    thin = runs("PP", model="ollama:thin")
    ranked = decide(_good_model() + dead + thin, PRICES)
    by_model = {d.model: d for d in ranked}
    assert [d.model for d in ranked] == ["ollama:good", "ollama:thin", "ollama:dead"]
    assert by_model["ollama:good"].text.startswith("ollama:good: deploy for tier heavy with config turns=x2")
    assert by_model["ollama:dead"].verdict == "not suitable"
    assert "below the methodology's minimum of N=3" in by_model["ollama:thin"].text


def test_card_shows_decision_ceiling_cost_and_dead_end(tmp_path: Path) -> None:
    attempts = _good_model() + runs("NNN", model="ollama:dead", turns=1)
    card = render_card("ollama:good", attempts, {"cpu": "2 cores", "runtime": "llama.cpp b1234"}, PRICES)
    assert "**Decision:** ollama:good: deploy for tier heavy with config turns=x2" in card
    assert "- cpu: 2 cores" in card and "| turns=x2 | heavy | 8/8" in card
    assert "- heavy: turn ceiling: more turns fixed it" in card
    assert "per pass" in card and "ollama:dead" not in card and "dead end" not in card
    dead = render_card("ollama:dead", attempts, {}, PRICES)
    assert "the runtime's chat template does not render tools: use tool_mode=prompted or constrained" in dead
    assert 'no price configured for ollama:dead: add [prices."ollama:dead"]' in dead
    paths = write_cards(tmp_path / "cards", attempts, {}, PRICES)
    assert [p.name for p in paths] == ["ollama_dead.md", "ollama_good.md"]


def test_below_minimum_names_the_cells_that_fell_short() -> None:
    full = runs("FFF", canary="x") + runs("FFF", canary="y")
    gated = runs("N", cell="tool_mode=native", canary="x")  # a failed smoke gate stopped this cell
    assert below_minimum(full) is None
    assert below_minimum(runs("F", canary="x")) == (
        "every verdict here is below the methodology's minimum of N=3 (N=1): rerun with --repeat=3"
    )
    assert below_minimum(full + gated) == (
        "tool_mode=native (N=1): below the methodology's minimum of N=3, so those verdicts are no "
        "evidence yet; run them to N=3"
    )
    other = runs("FF", model="vllm:b", canary="x") + runs("FFF", model="vllm:b", canary="y")
    assert below_minimum(full + other).startswith("vllm:b · baseline (N=2): ")  # type: ignore[union-attr]
