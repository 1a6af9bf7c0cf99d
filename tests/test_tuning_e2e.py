"""The two-step tuning workflow end to end: OFAT sweep -> cards and decide view -> combined cell / probes.

The model is the scripted server (real loopback HTTP) running `solve`, which needs 5 turns: with the
canaries' budget of 3 turns the baseline runs out every time, the `turns=8` cell passes every time
(6 discordant pairs over two canaries x 3 repetitions: the least the exact test can call), and
`temperature=0.5` changes nothing. That truth is what the cards, the combined cell and the probe
plan must reflect.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests._runs import run
from tests.support.scripted_server import ScriptedServer
from tests.support.tiny_canary import FILES, write_tiny_canary

MODEL = "openai:scripted"
CONFIG = f"""
models = ["{MODEL}"]
smoke = false

[prices."{MODEL}"]
input = 1.0
output = 2.0

[matrix.factors]
turns = [8]
temperature = [0.5]
"""
CONFTEST = """
def pytest_agentloop_card(model, lines, attempts):
    lines.append(f"- amended by conftest: {len(attempts)} attempts")
"""


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    with ScriptedServer("solve", edits=[("calc.py", FILES["solution/calc.py"])]) as scripted:
        yield scripted


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    write_tiny_canary(pytester.path / "canaries" / "tiny", turns=3)
    write_tiny_canary(pytester.path / "canaries" / "tiny2", id="tiny2", tier="lite", turns=3)
    pytester.makefile(".toml", agentloop=CONFIG)
    pytester.makeconftest(CONFTEST)
    return pytester


def collected(result: pytest.RunResult) -> set[str]:
    return {line.split("::")[1] for line in result.outlines if "::" in line}


def test_ofat_sweep_cards_then_combined_cell(project: pytest.Pytester, server: ScriptedServer) -> None:
    host = f"--agent-host={server.url}"
    sweep = run(project, host, "--repeat=3", "--agent-json=ofat.json", "--agent-cards=cards")
    sweep.assert_outcomes(passed=6, failed=12)
    sweep.stdout.fnmatch_lines(
        [
            "*agentloop decide*",
            "1.*openai:scripted  turns=8  6/6 (100%, 95% CI 61%-100%)  $0.0*/pass  deploy for tier lite*",
            "card: cards/openai_scripted.md",
        ]
    )
    card = (project.path / "cards" / "openai_scripted.md").read_text()
    assert "**Decision:** openai:scripted: deploy for tier lite with turns=8: 3/3" in card
    assert "- runtime: openai-compatible" in card and "- harness cpu: " in card and "- harness ram: " in card
    assert "| turns=8 | lite | 3/3 (100%" in card and "| baseline | smoke | 0/3 (0%" in card
    assert "turns=8 6/6 vs baseline 0/6: better" in card
    assert "temperature=0.5 0/6 vs baseline 0/6: no evidence of a difference" in card
    # 3/3 vs 0/3 on one canary is too few runs for the exact test; pooled over both it is called
    assert "(tiny, tiny2): turn ceiling: more turns fixed it: turns=8 6/6 vs baseline 0/6: better" in card
    assert "per pass ($" in card and "below the methodology's minimum" not in card
    assert card.rstrip().endswith("- amended by conftest: 18 attempts")

    listed = run(project, host, "--repeat=3", "--agent-combine=ofat.json", "--collect-only", "-q")
    assert {item.split("[")[1] for item in collected(listed)} == {
        f"scripted-{cell}-r{rep}]" for cell in ("baseline", "combined") for rep in (1, 2, 3)
    }
    combined = run(project, host, "--repeat=3", "--agent-combine=ofat.json", "--agent-json=combined.json")
    combined.assert_outcomes(passed=6, failed=6)
    combined.stdout.fnmatch_lines(
        ["tuning: openai:scripted: combined cell = turns=8 (turns=8 6/6 vs*: better*"]
    )
    attempts = json.loads((project.path / "combined.json").read_text())["attempts"]
    assert {a["cell_config"]["turns"] for a in attempts if a["cell"] == "combined"} == {8}


def test_no_winner_runs_only_the_baseline_with_a_note(
    project: pytest.Pytester, server: ScriptedServer
) -> None:
    """At --repeat=1 the turns=8 cell wins 2/2 vs 0/2: too thin to call, so nothing is combined."""
    host = f"--agent-host={server.url}"
    thin = run(project, host, "--agent-json=thin.json", "--agent-cards=cards")
    thin.stdout.fnmatch_lines(["*below the methodology's minimum of N=3 (N=1): rerun with --repeat=3*"])
    card = (project.path / "cards" / "openai_scripted.md").read_text()
    assert "**Note:** every verdict here is below the methodology's minimum of N=3 (N=1)" in card
    listed = run(project, host, "--agent-combine=thin.json", "--collect-only", "-q")
    assert collected(listed) == {"tiny[scripted-baseline-r1]", "tiny2[scripted-baseline-r1]"}
    listed.stdout.fnmatch_lines(
        ["tuning: openai:scripted: no factor beat the baseline*only the baseline runs*"]
    )


def test_diagnose_probes_exactly_the_canaries_over_budget(
    project: pytest.Pytester, server: ScriptedServer
) -> None:
    host = f"--agent-host={server.url}"
    run(project, host, "--agent-json=first.json", "-k", "baseline")
    write_tiny_canary(project.path / "canaries" / "tiny3", id="tiny3", tier="lite")  # not in first.json
    listed = run(project, host, "--agent-diagnose=first.json", "--collect-only", "-q")
    probes = {item for item in collected(listed) if "x2" in item}
    raised = ("turns", "tokens", "turns+tokens")
    assert probes == {f"{c}[scripted-{f}=x2-r1]" for c in ("tiny", "tiny2") for f in raised}
    probed = run(project, host, "--agent-diagnose=first.json", "-k", "x2 or baseline", "--agent-json=d.json")
    rows = json.loads((project.path / "d.json").read_text())["attempts"]
    assert {(a["canary"], a["cell"]) for a in rows if a["outcome"] == "passed"} >= {("tiny", "turns=x2")}
    assert {a["cell_config"]["turns"] for a in rows if a["cell"] == "turns=x2"} == {6}
    assert "Traceback" not in probed.stdout.str()
