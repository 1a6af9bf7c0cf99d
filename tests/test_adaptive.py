"""Adaptive repetition (`--repeat=auto[:N]`): the stopping rules on counts, then through the plugin.

Curtailment must give exactly the fixed-N decision (checked against every completion, exhaustively);
futility may only ever withhold a difference. Through pytester, against the scripted model, settled
cells skip their later rounds with the reason, and rounds run in order.
"""

from __future__ import annotations

import json
from itertools import product

import pytest

from pytest_agentloop.adaptive import parse_repeat
from pytest_agentloop.analysis.adaptive import comparison_settled, threshold_settled
from pytest_agentloop.analysis.stats import compare_counts
from tests.support.scripted_server import ScriptedServer
from tests.support.tiny_canary import FILES, write_tiny_canary

MOST = 6


def test_curtailment_is_exactly_the_fixed_n_decision() -> None:
    """Every state of two cells at MOST=6 that curtailment settles: every way the rest can come out
    gives that decision at N=6. Futility settles only "no evidence of a difference"."""
    settled = 0
    for runs in range(3, MOST):
        for b, c in product(range(runs + 1), repeat=2):
            found = comparison_settled((b, runs), (c, runs), MOST)
            if found is None:
                continue
            settled += 1
            if found.rule == "futility":
                assert found.decision == "no evidence of a difference" and b == c
                continue
            left = MOST - runs
            finals = {
                compare_counts((b + x, MOST), (c + y, MOST)).verdict
                for x in range(left + 1)
                for y in range(left + 1)
            }
            assert finals == {found.decision}, (b, c, runs)
    assert settled > 10


def test_nothing_settles_below_the_methodology_minimum() -> None:
    assert comparison_settled((0, 2), (2, 2), 3) is None
    assert threshold_settled((0, 2), 9) is None
    assert threshold_settled((0, 3), 9) is not None and threshold_settled((0, 3), 9).decision == "below 80%"  # type: ignore[union-attr]
    assert threshold_settled((8, 8), 9).decision == "reaches 80%"  # type: ignore[union-attr]
    assert threshold_settled((7, 7), 9) is None  # 8 of 9 needed: still open
    assert threshold_settled((5, 7), 9).decision == "below 80%"  # type: ignore[union-attr]


def test_parse_repeat() -> None:
    assert parse_repeat("3") == (3, False)
    assert parse_repeat("auto") == (9, True)
    assert parse_repeat("auto:12") == (12, True)
    with pytest.raises(pytest.UsageError, match="auto:N with N >= 1"):
        parse_repeat("auto:x")
    with pytest.raises(pytest.UsageError, match="number of repetitions"):
        parse_repeat("lots")


CONFIG = """
models = ["openai:scripted"]
smoke = false

[matrix.factors]
temperature = [0.5]
"""


def test_settled_cells_skip_their_later_rounds(pytester: pytest.Pytester) -> None:
    """The model solves every time in both cells: at 3/3 against 3/3 neither can reach a difference
    at N=6, so rounds 4-6 are skipped with the reason; rounds 1-3 ran in round order."""
    write_tiny_canary(pytester.path / "canaries" / "tiny", tier="lite")
    pytester.makefile(".toml", agentloop=CONFIG)
    with ScriptedServer("solve", edits=[("calc.py", FILES["solution/calc.py"])]) as server:
        result = pytester.runpytest(
            f"--agent-host={server.url}", "--repeat=auto:6", "--agent-json=r.json", "-rs", "-v"
        )
    result.assert_outcomes(passed=6, skipped=6)
    result.stdout.fnmatch_lines(["*agentloop adaptive: baseline settled after 3 of 6 runs by *"])
    result.stdout.fnmatch_lines(["*agentloop adaptive: temperature=0.5 settled after 3 of 6 runs by *"])
    ran = [line.split("[", 1)[1].split("]")[0] for line in result.outlines if " PASSED" in line]
    assert ran == [f"scripted-{cell}-r{r}" for r in (1, 2, 3) for cell in ("baseline", "temperature=0.5")]
    attempts = json.loads((pytester.path / "r.json").read_text())["attempts"]
    assert len(attempts) == 6


def test_a_lone_failing_baseline_stops_at_the_minimum(pytester: pytest.Pytester) -> None:
    write_tiny_canary(pytester.path / "canaries" / "tiny", tier="lite")
    with ScriptedServer("quits_at_once") as server:
        result = pytester.runpytest(
            "--agent-model=openai:scripted",
            f"--agent-host={server.url}",
            "--agent-no-smoke",
            "--repeat=auto",
            "-rs",
        )
    result.assert_outcomes(failed=3, skipped=6)
    result.stdout.fnmatch_lines(["*baseline settled after 3 of 9 runs by curtailment: below 80%*"])


def test_a_bad_repeat_is_one_clear_line(pytester: pytest.Pytester) -> None:
    write_tiny_canary(pytester.path / "canaries" / "tiny", tier="lite")
    result = pytester.runpytest("--agent-model=reference", "--repeat=auto:0")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*--repeat=auto:0: write auto or auto:N with N >= 1*"])


@pytest.mark.parametrize(("dist", "ran"), [("loadgroup", 3), ("load", 9)])
def test_under_xdist_the_worker_decides_only_with_loadgroup(
    pytester: pytest.Pytester, dist: str, ran: int
) -> None:
    """With --dist loadgroup one worker runs all of a model × canary, so it has the whole picture;
    with another distribution no cell is stopped early, and the summary says why."""
    write_tiny_canary(pytester.path / "canaries" / "tiny", tier="lite")
    with ScriptedServer("quits_at_once") as server:
        result = pytester.runpytest_subprocess(
            "--agent-model=openai:scripted",
            f"--agent-host={server.url}",
            "--agent-no-smoke",
            "--repeat=auto",
            "-n",
            "2",
            f"--dist={dist}",
            "-p",
            "no:cacheprovider",
            timeout=300,
        )
    result.assert_outcomes(failed=ran, skipped=9 - ran)
    if dist == "load":
        result.stdout.fnmatch_lines(
            ["*--repeat=auto stopped no cell early: under xdist it needs --dist loadgroup*"]
        )
