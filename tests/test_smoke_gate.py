"""The smoke gate through the whole plugin, against a real scripted model server on loopback.

`never_calls` answers with prose only, so the smoke canary makes no usable tool call: the model's
other items must be skipped with that reason, and run again once `--agent-no-smoke` is given.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_agentloop.gate import SmokeGate
from tests._runs import run, tiny_suite
from tests.support.scripted_server import ScriptedServer
from tests.support.tiny_canary import FILES, write_tiny_canary

pytest_plugins = ["pytester"]

SOLVE = [("calc.py", FILES["solution/calc.py"])]


def run_scripted(pytester: pytest.Pytester, server: ScriptedServer) -> pytest.RunResult:
    """The tiny suite against the scripted model, skips listed, attempts in r.json."""
    return run(
        pytester, "-rs", "--agent-model=openai:scripted", f"--agent-host={server.url}", "--agent-json=r.json"
    )


def attempts(path: Path) -> list[dict[str, object]]:
    return list(json.loads(path.read_text())["attempts"])


def test_no_tool_call_on_smoke_skips_the_rest(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    with ScriptedServer("never_calls") as server:
        result = run_scripted(pytester, server)
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            "*agentloop smoke gate*",
            "openai:scripted (native): smoke tiny FAIL (no usable tool call*); load -, first reply *s, *",
            "SKIPPED [[]1[]] canaries/tiny2/canary.toml:1: agentloop: smoke gate: no usable tool call on the "
            "smoke canary tiny in native mode (no_tool_calls)",
        ]
    )
    assert [a["canary"] for a in attempts(pytester.path / "r.json")] == ["tiny"]


def test_no_smoke_runs_everything(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    with ScriptedServer("never_calls") as server:
        result = run(
            pytester, "--agent-no-smoke", "--agent-model=openai:scripted", f"--agent-host={server.url}"
        )
    result.assert_outcomes(failed=2)
    result.stdout.no_fnmatch_line("*smoke gate*")


def test_passing_gate_is_run_once_across_workers_and_reused_by_the_smoke_item(
    pytester: pytest.Pytester,
) -> None:
    """With -n 2 and three repetitions, the smoke attempt is recorded once, like every other attempt."""
    tiny_suite(pytester.path)
    basetemp = pytester.path / "bt"
    with ScriptedServer("solve", edits=SOLVE) as server:
        result = run(
            pytester, "-n", "2", "--repeat", "3", "--agent-model=openai:scripted",
            f"--agent-host={server.url}", "--agent-json=r.json", f"--basetemp={basetemp}",
        )  # fmt: skip
    result.assert_outcomes(passed=6)
    keys = [(a["canary"], a["repetition"]) for a in attempts(pytester.path / "r.json")]
    assert sorted(keys) == [("tiny", 1), ("tiny", 2), ("tiny", 3), ("tiny2", 1), ("tiny2", 2), ("tiny2", 3)]
    gates = SmokeGate(basetemp).results()
    assert [(g.model, g.tool_mode, g.canary, g.ok) for g in gates] == [
        ("openai:scripted", "native", "tiny", True)
    ]


def test_gate_runs_a_selected_smoke_canary_not_a_deselected_one(pytester: pytest.Pytester) -> None:
    """`-k` decides what runs: a smoke canary the user deselected must not run as the gate."""
    tiny_suite(pytester.path)
    write_tiny_canary(pytester.path / "canaries" / "a-early", id="early", tier="smoke")  # collected first
    with ScriptedServer("solve", edits=SOLVE) as server:
        result = run(pytester, "-k", "tiny[", "--agent-model=openai:scripted", f"--agent-host={server.url}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["openai:scripted (native): smoke tiny pass*"])
    result.stdout.no_fnmatch_line("*smoke early*")


def test_each_tool_mode_has_its_own_gate(pytester: pytest.Pytester) -> None:
    """A dead native mode skips only the native cells: the prompted cell, which works, still runs.

    The model behind `text_only_template` ignores tool schemas sent to the runtime (as SmolLM2's
    template does) but calls tools from the prompt; skipping its whole matrix would hide the way out.
    """
    tiny_suite(pytester.path)
    pytester.makefile(".toml", agentloop='[matrix.factors]\ntool_mode = ["prompted"]\n')
    with ScriptedServer("text_only_template", edits=SOLVE) as server:
        result = run_scripted(pytester, server)
    result.assert_outcomes(passed=2, failed=1, skipped=1)
    result.stdout.fnmatch_lines_random(
        [
            "openai:scripted (native): smoke tiny FAIL (no usable tool call*",
            "openai:scripted (prompted): smoke tiny pass*",
            "*SKIPPED*agentloop: smoke gate: no usable tool call on the smoke canary tiny in native*",
        ]
    )
    ran = sorted((a["canary"], a["cell"], a["outcome"]) for a in attempts(pytester.path / "r.json"))
    assert ran == [
        ("tiny", "baseline", "no_tool_calls"),
        ("tiny", "tool_mode=prompted", "passed"),
        ("tiny2", "tool_mode=prompted", "passed"),
    ]
