"""Real agents from PyPI (mini-swe-agent, aider) run as shipped in examples/external-agents.toml.

Each runs end to end through pytester: the sandbox, the metering proxy, real git, real grading.
The model is the scripted server (known truth: mini-swe-agent's `bash` tool calls, aider's `whole`
edit blocks, streamed as aider asks) or the real embedded SmolLM2. The agents live in their own
venv, installed by `.ci/run`; without it these tests skip and say how to install them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.support.scripted_server import ScriptedServer

ROOT = Path(__file__).resolve().parents[1]
CANARY = ROOT / "canaries" / "smoke" / "fix-greeting-typo"
BIN = os.environ.get("AGENTLOOP_AGENTS_BIN", "")
INSTALL = (
    "python -m venv .ci/agents-venv && .ci/agents-venv/bin/pip install aider-chat mini-swe-agent "
    "&& export AGENTLOOP_AGENTS_BIN=$PWD/.ci/agents-venv/bin"
)

pytestmark = pytest.mark.skipif(
    not (BIN and (Path(BIN) / "mini").exists() and (Path(BIN) / "aider").exists()),
    reason=f"real agents not installed (AGENTLOOP_AGENTS_BIN unset or incomplete): {INSTALL}",
)

SOLUTION = [
    (path.relative_to(CANARY / "solution").as_posix(), path.read_text(encoding="utf-8"))
    for path in sorted((CANARY / "solution").rglob("*"))
    if path.is_file()
]


def project(pytester: pytest.Pytester, model: str, *, turns: int | None = None, drop: str = "") -> Path:
    """The smoke canary and the shipped agent configs, as is but for the model (and `drop`, a line).

    The time budget is generous: on a loaded 2-core machine the tiny model's replies to a long
    agent prompt take minutes, and only turn budgets may decide these tests."""
    shutil.copytree(CANARY, pytester.path / "canary")
    toml = pytester.path / "canary" / "canary.toml"
    text = toml.read_text().replace("seconds = 180", "seconds = 1200")
    toml.write_text(text.replace("turns = 8", f"turns = {turns}") if turns else text, encoding="utf-8")
    text = (ROOT / "examples" / "external-agents.toml").read_text(encoding="utf-8")
    text = text.replace('model = "embedded:smollm2-135m"', f'model = "{model}"')
    if drop:
        text = "\n".join(line for line in text.splitlines() if not line.startswith(drop))
    (pytester.path / "agentloop.toml").write_text(text, encoding="utf-8")
    return pytester.path


def attempt(pytester: pytest.Pytester, agent: str, *args: str, subprocess: bool = False) -> dict[str, Any]:
    run = pytester.runpytest_subprocess if subprocess else pytester.runpytest
    run(
        f"--agent-model=external:{agent}",
        "--agent-json=r.json",
        *args,
        str(pytester.path / "canary" / "canary.toml"),
    )
    (record,) = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))["attempts"]
    return dict(record)


def counters(record: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("turns", "tool_calls", "malformed_tool_calls", "redundant_tool_calls", "text_tool_calls")
    return tuple(record[key] for key in keys)


def test_mini_swe_agent_solves_with_scripted_bash_calls(pytester: pytest.Pytester) -> None:
    """The script writes the solution with a heredoc, runs the tests, submits: three bash calls."""
    project(pytester, "openai:scripted")
    with ScriptedServer("bash_solve", edits=SOLUTION) as server:
        record = attempt(pytester, "mini-swe-agent", f"--agent-host={server.url}")
    assert record["outcome"] == "passed", record["reason"]
    assert counters(record) == (3, 3, 0, 0, 0)
    assert record["prompt_tokens"] > 1000 and record["completion_tokens"] > 0  # mini's long prompt
    assert record["model_info"]["runtime"] == "openai-compatible"


def test_mini_swe_agent_is_stopped_at_the_turn_budget(pytester: pytest.Pytester) -> None:
    """A model that lists files forever: the proxy refuses request 4 with a 403 (final for litellm),
    mini-swe-agent stops, and the attempt is budget_exceeded (turns), the repeats redundant."""
    project(pytester, "openai:scripted", turns=3)
    with ScriptedServer("bash_forever") as server:
        record = attempt(pytester, "mini-swe-agent", f"--agent-host={server.url}")
        assert len(server.requests) == 3
    assert (record["outcome"], record["limit"]) == ("budget_exceeded", "turns")
    assert "turn budget of 3" in record["reason"]
    assert counters(record) == (3, 3, 0, 2, 0)


def test_mini_swe_agent_setup_wizard_is_an_infra_error(pytester: pytest.Pytester) -> None:
    """Without MSWEA_CONFIGURED, mini-swe-agent's first run asks for a model on stdin (here the
    spec), never reaching the model: the agent could not run, which is no failure of the model."""
    project(pytester, "openai:scripted", drop="MSWEA_CONFIGURED")
    with ScriptedServer("bash_solve", edits=SOLUTION) as server:
        record = attempt(pytester, "mini-swe-agent", f"--agent-host={server.url}")
        assert server.requests == []
    assert record["outcome"] == "infra_error"
    assert record["reason"].startswith("the agent could not run: it stopped before its first model call")


def test_aider_solves_from_a_streamed_whole_file_edit(pytester: pytest.Pytester) -> None:
    """aider streams (SSE) and edits from `whole` blocks, not tool calls: the proxy relays and counts
    the stream; tool-call counters stay null because aider declares no tools."""
    project(pytester, "openai:scripted")
    with ScriptedServer("whole_file_edit", edits=SOLUTION) as server:
        record = attempt(pytester, "aider", f"--agent-host={server.url}")
        # The edit is streamed; aider asks for its commit message without streaming.
        streamed = [bool(request.get("stream")) for request in server.requests]
    assert True in streamed and record["turns"] == len(streamed)
    assert record["outcome"] == "passed", record["reason"]
    assert record["turns"] >= 1 and record["prompt_tokens"] > 0 and record["completion_tokens"] > 0
    assert record["tool_calls"] is None


@pytest.mark.parametrize("agent", ["mini-swe-agent", "aider"])
def test_a_real_agent_on_the_embedded_model_is_metered(pytester: pytest.Pytester, agent: str) -> None:
    """One short attempt (one turn) against the real SmolLM2: it will not solve the task, but the
    proxy's counters are measured (never null where they apply) and the outcome is a model outcome.
    In a subprocess: the embedded server's numpy cannot be imported twice in one process."""
    project(pytester, "embedded:smollm2-135m", turns=1)
    record = attempt(pytester, agent, subprocess=True)
    assert record["outcome"] in ("passed", "failed", "budget_exceeded", "no_tool_calls", "escalated"), record[
        "reason"
    ]
    assert record["turns"] >= 1 and record["prompt_tokens"] > 0 and record["completion_tokens"] > 0
    if agent == "mini-swe-agent":
        assert None not in counters(record)
