"""Verdicts against known truth: scripted models whose behaviour is fixed by construction solve a real
canary (by replaying its solution) exactly when their condition holds, and every attempt runs through
the real pipeline (`attempt.run_attempt`: workspace, loop, OpenAI backend over loopback, sandboxed
grading). The diagnosis, the combined cell, `agentloop compare` and the decide view must match the
truth at N=9, and at N=3 say "inconclusive" (or the truth), never a wrong verdict.

The models (tests/support/known_truth.py): turn_bound, token_bound, incapable, coin_flip and
temperature_sensitive. N=3 is the first three repetitions of the N=9 runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_agentloop.agent.loop import LoopAgent
from pytest_agentloop.analysis.diagnosis import ceiling_diagnoses
from pytest_agentloop.analysis.verdicts import comparisons, decide
from pytest_agentloop.attempt import run_attempt
from pytest_agentloop.backends.base import ModelSpec
from pytest_agentloop.backends.openai import OpenAIBackend
from pytest_agentloop.canary import load_canary
from pytest_agentloop.cells import Cell, CellSettings
from pytest_agentloop.cli import main
from pytest_agentloop.records import RESULTS_SCHEMA, Attempt
from pytest_agentloop.tuning import factor_winners
from tests.support.known_truth import seed_coin, solution_edits
from tests.support.scripted_server import ScriptedServer

CANARY = (
    Path(__file__).resolve().parents[1] / "canaries" / "smoke" / "fix-greeting-typo"
)  # turns 8, tokens 30k
WARM = CellSettings(temperature=0.7)
BASE = Cell(id="baseline")
TURNS = Cell(id="turns=x2", settings=CellSettings(turns=16), factor="turns")
TOKENS = Cell(id="tokens=x2", settings=CellSettings(tokens=60_000), factor="tokens")
BOTH = Cell(id="turns+tokens=x2", settings=CellSettings(turns=16, tokens=60_000))
COLD = Cell(id="temperature=0.2", settings=CellSettings(temperature=0.2), factor="temperature")
# model -> the cells it runs; the first is its baseline
MATRIX: dict[str, list[Cell]] = {
    "turn_bound": [BASE, TURNS],
    "token_bound": [BASE, TOKENS],
    "incapable": [BASE, BOTH],
    "coin_flip": [Cell(id="baseline", settings=WARM), COLD],
    "temperature_sensitive": [Cell(id="baseline", settings=WARM), COLD],
}
CEILINGS = {"turn_bound": "turn ceiling", "token_bound": "token ceiling", "incapable": "capability ceiling"}


@pytest.fixture(scope="module")
def runs9(tmp_path_factory: pytest.TempPathFactory) -> list[Attempt]:
    """Nine repetitions of every model × cell (90 attempts; a scripted reply is instant)."""
    canary = load_canary(CANARY / "canary.toml")
    parent = tmp_path_factory.mktemp("known-truth")
    attempts = []
    for model, cells in MATRIX.items():
        with ScriptedServer(model, edits=solution_edits(CANARY)) as server:
            seed_coin(server, 20261204)
            backend = OpenAIBackend(ModelSpec.parse("openai:scripted"), server.url, backoff_s=0.01)
            try:
                for repetition in range(1, 10):
                    for cell in cells:
                        attempts.append(
                            run_attempt(
                                canary,
                                LoopAgent(backend),
                                model=model,
                                cell=cell,
                                repetition=repetition,
                                parent=parent,
                            )
                        )
            finally:
                backend.close()
    return attempts


def first(attempts: list[Attempt], n: int) -> list[Attempt]:
    return [a for a in attempts if a.repetition <= n]


def own(attempts: list[Attempt], model: str) -> list[Attempt]:
    return [a for a in attempts if a.model == model]


def test_the_scripted_truth_holds(runs9: list[Attempt]) -> None:
    """The premise: each model passes exactly where its condition holds (the coin, about half the time)."""
    passes = {(a.model, a.cell): 0 for a in runs9}
    for a in runs9:
        passes[a.model, a.cell] += a.outcome.value == "passed"
    assert passes == {
        ("turn_bound", "baseline"): 0,
        ("turn_bound", "turns=x2"): 9,
        ("token_bound", "baseline"): 0,
        ("token_bound", "tokens=x2"): 9,
        ("incapable", "baseline"): 0,
        ("incapable", "turns+tokens=x2"): 0,
        ("coin_flip", "baseline"): passes["coin_flip", "baseline"],
        ("coin_flip", "temperature=0.2"): passes["coin_flip", "temperature=0.2"],
        ("temperature_sensitive", "baseline"): 0,
        ("temperature_sensitive", "temperature=0.2"): 9,
    }
    assert 2 <= passes["coin_flip", "baseline"] <= 7 and 2 <= passes["coin_flip", "temperature=0.2"] <= 7


@pytest.mark.parametrize("n", [9, 3])
def test_ceilings(runs9: list[Attempt], n: int) -> None:
    found = {d.model: d for d in ceiling_diagnoses(first(runs9, n))}
    assert set(found) == set(CEILINGS)  # the others never ran out of budget
    for model, truth in CEILINGS.items():
        if n == 9:
            assert found[model].verdict == truth, found[model].text
        else:
            assert found[model].verdict in (truth, "inconclusive"), found[model].text
    if n == 3:  # 0/3 against 0/3 cannot exclude anything: runs are named instead of a verdict
        assert found["incapable"].verdict == "inconclusive"
        assert "more runs per canary of baseline and turns+tokens=x2 would exclude" in found["incapable"].text


@pytest.mark.parametrize("n", [9, 3])
def test_combined_cell_takes_only_real_winners(runs9: list[Attempt], n: int) -> None:
    runs = first(runs9, n)
    assert {f: w.value for f, w in factor_winners(own(runs, "temperature_sensitive")).items()} == {
        "temperature": 0.2
    }  # 3/3 against 0/3 is the one table N=3 can call (Boschloo p = 1/32): true, so not wrong
    assert factor_winners(own(runs, "coin_flip")) == {}
    assert factor_winners(own(runs, "incapable")) == {}
    coin = comparisons(own(runs, "coin_flip"))["temperature=0.2"]
    assert coin.verdict == "no evidence of a difference" and coin.ci_low < 0 < coin.ci_high


@pytest.mark.parametrize("n", [9, 3])
def test_decide(runs9: list[Attempt], n: int) -> None:
    decisions = {d.model: d for d in decide(first(runs9, n), {})}
    truth = {
        "turn_bound": "turns=16",
        "token_bound": "tokens=60000",
        "temperature_sensitive": "temperature=0.2",
    }
    for model, settings in truth.items():
        decision = decisions[model]
        assert decision.verdict in ("deploy", "needs more runs"), decision.text
        if decision.verdict == "deploy":
            assert decision.text.startswith(f"{model}: deploy for tier smoke with {settings}: {n}/{n}")
    assert decisions["incapable"].verdict != "deploy"
    assert decisions["coin_flip"].verdict != "deploy"
    if n == 9:
        assert {m for m, d in decisions.items() if d.verdict == "deploy"} == set(truth)
        assert decisions["incapable"].verdict == "not suitable"


def _results(path: Path, attempts: list[Attempt]) -> str:
    document = {
        "schema": RESULTS_SCHEMA,
        "run": {"started": "x"},
        "attempts": [a.to_record() for a in attempts],
    }
    path.write_text(json.dumps(document))
    return str(path)


@pytest.mark.parametrize("n", [9, 3])
def test_compare(runs9: list[Attempt], n: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs of the same models: the temperature-sensitive one in its cold cell against its warm
    baseline is better; the coin flip shows no evidence; each model is compared on its own."""
    runs = first(runs9, n)
    picked = ("coin_flip", "temperature_sensitive")
    before = _results(tmp_path / "a.json", [a for a in runs if a.model in picked and a.cell == "baseline"])
    after = _results(
        tmp_path / "b.json",
        [
            a.model_copy(update={"cell": "baseline"})
            for a in runs
            if a.model in picked and a.cell != "baseline"
        ],
    )
    assert main(["compare", before, after]) == 0
    blocks = capsys.readouterr().out.split("\n\n")
    verdicts = {block.splitlines()[0].rsplit(" · ", 1)[1]: block.splitlines()[-1] for block in blocks}
    assert f"B {n}/{n} vs A 0/{n}: better" in verdicts["temperature_sensitive"]
    assert "no evidence of a difference" in verdicts["coin_flip"]
