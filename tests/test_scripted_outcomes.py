"""Every scripted behaviour, through the whole plugin, lands on the outcome and counters it must.

The model is a real OpenAI-compatible HTTP server on loopback (tests/support/scripted_server.py)
whose replies are scripted, so the truth of each attempt is known in advance; the plugin runs in
pytester with the real backend, workspace, sandbox and grading.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.scripted_server import ScriptedServer
from tests.support.tiny_canary import FILES, write_tiny_canary

SOLUTION = [("calc.py", FILES["solution/calc.py"])]
TURNS = 6

# behaviour -> fields the attempt record must hold
EXPECTED: dict[str, dict[str, Any]] = {
    "solve": {"outcome": "passed", "turns": 5, "tool_calls": 5, "pushed": True, "checks_passed": 1},
    "solve_as_text": {"outcome": "passed", "text_tool_calls": 5, "malformed_tool_calls": 0},
    "flaky": {"outcome": "passed", "infra_retries": 0},
    "loop_one_call": {
        "outcome": "budget_exceeded",
        "limit": "turns",
        "turns": TURNS,
        "redundant_tool_calls": TURNS - 1,
    },
    "burns_tokens": {"outcome": "budget_exceeded", "limit": "tokens", "turns": 1},
    "never_calls": {"outcome": "no_tool_calls", "tool_calls": 0, "malformed_tool_calls": 0},
    "broken_json": {"outcome": "no_tool_calls", "tool_calls": 0, "malformed_tool_calls": TURNS},
    "calls_as_text": {"outcome": "failed", "text_tool_calls": 2, "pushed": False},
    "quits_at_once": {"outcome": "failed", "turns": 1, "pushed": False},
    "escalates": {"outcome": "escalated", "turns": 1},
}


@pytest.mark.parametrize("behaviour", sorted(EXPECTED))
def test_behaviour_produces_its_outcome(pytester: pytest.Pytester, behaviour: str) -> None:
    write_tiny_canary(pytester.path / "canaries" / "tiny", tier="lite", turns=TURNS)
    with ScriptedServer(behaviour, edits=SOLUTION) as server:
        result = pytester.runpytest(
            "--agent-model=openai:scripted", f"--agent-host={server.url}", "--agent-json=r.json"
        )
    assert "Traceback" not in result.stdout.str()
    [attempt] = json.loads((pytester.path / "r.json").read_text())["attempts"]
    assert {key: attempt[key] for key in EXPECTED[behaviour]} == EXPECTED[behaviour]
    result.assert_outcomes(**({"passed": 1} if attempt["outcome"] == "passed" else {"failed": 1}))


def test_a_model_that_never_answers_is_an_infra_error_not_a_failure(pytester: pytest.Pytester) -> None:
    """Every request answers 500: the harness retries, then records infra_error, never a model failure."""
    write_tiny_canary(pytester.path / "canaries" / "tiny", tier="lite", turns=TURNS)
    pytester.makefile(
        ".toml", agentloop="infra_retries = 1\n[backends.openai]\nretries = 2\nbackoff_s = 0.01\n"
    )
    with ScriptedServer("solve", edits=SOLUTION) as server:
        server.behaviour = lambda _server, _body: {"status": 500}
        result = pytester.runpytest(
            "--agent-model=openai:scripted", f"--agent-host={server.url}", "--agent-json=r.json"
        )
    [attempt] = json.loads((pytester.path / "r.json").read_text())["attempts"]
    assert (attempt["outcome"], attempt["infra_retries"]) == ("infra_error", 1)
    result.stdout.fnmatch_lines(["*infra_error: *500*"])
