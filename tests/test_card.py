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
    assert [(d.rank, d.model) for d in ranked] == [
        ("1=", "ollama:good"),
        ("1=", "ollama:thin"),
        ("3.", "ollama:dead"),
    ]
    assert by_model["ollama:good"].text.startswith("ollama:good: deploy for tier heavy with turns=60: 8/8")
    assert by_model["ollama:dead"].verdict == "not suitable"
    assert by_model["ollama:thin"].text.startswith(
        "ollama:thin: needs 1 more run per canary: below the method"
    )


def test_ranking_is_by_pass_rate_even_below_the_minimum() -> None:
    """null 0/1 was once ranked above reference 1/1 (by name); the rate decides, and N<3 is marked."""
    from pytest_agentloop.report.decide import decide_lines

    lines = decide_lines(runs("F", model="null") + runs("P", model="reference"), {})
    assert lines[0].startswith("1=  reference") and lines[1].startswith("1=  null")  # 1/1 vs 0/1: a tie
    assert "(N<3)" in lines[0]
    lines = decide_lines(runs("FFFFFFFFF", model="null") + runs("PPPPPPPPP", model="reference"), {})
    assert lines[0].startswith("1.  reference") and lines[1].startswith("2.  null")


def test_a_tier_counts_only_when_the_tiers_below_it_also_pass() -> None:
    """The issue's case: 'deploy for tier medium' while lite was 0/9."""
    attempts = runs("FFFFFFFFF", canary="l", tier="lite") + runs("PPPPPPPPP", canary="m", tier="medium")
    (decision,) = decide(attempts, {})
    assert (
        decision.verdict == "not suitable" and "lite 0/9" in decision.text and "medium" not in decision.text
    )
    attempts = runs("PPPPPPPPP", canary="l", tier="lite") + runs("PPPPPFFFF", canary="m", tier="medium")
    (decision,) = decide(attempts, {})
    assert decision.text == (
        "m: deploy for tier lite with the baseline settings: 9/9 (100%, 95% CI 70%-100%); "
        "medium 5/9 (56%, 95% CI 27%-81%): needs about 2 more runs per canary to settle 80%"
    )


def test_an_open_decision_says_how_many_runs_never_not_suitable() -> None:
    (decision,) = decide(runs("PPF", canary="l", tier="lite"), {})
    assert decision.verdict == "needs more runs"
    assert (
        decision.text.startswith("m: needs about")
        and "more runs per canary to settle 80%: lite 2/3" in decision.text
    )


def test_a_recommendation_spells_out_the_settings() -> None:
    base = runs("FFFFFFFFF", cell_config={"turns": 6, "temperature": 0.7})
    combined = runs("PPPPPPPPP", cell="combined", cell_config={"turns": 12, "temperature": 0.2})
    (decision,) = decide(base + combined, {})
    assert decision.settings == "temperature=0.2, turns=12"
    assert "deploy for tier lite with temperature=0.2, turns=12" in decision.text


def test_card_shows_decision_ceiling_cost_and_dead_end(tmp_path: Path) -> None:
    attempts = _good_model() + runs("NNN", model="ollama:dead", turns=1)
    card = render_card("ollama:good", attempts, {"cpu": "2 cores", "runtime": "llama.cpp b1234"}, PRICES)
    assert "**Decision:** ollama:good: deploy for tier heavy with turns=60" in card
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
