"""The agent loop end to end: scripted model server on loopback -> real OpenAIBackend -> LoopAgent ->
real Toolbox on a real workspace. Each behaviour has a known truth, so the episode's end, limit and
counters are asserted exactly."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.agent.base import AgentTask, AttemptBudget, Episode
from pytest_agentloop.agent.loop import LoopAgent
from pytest_agentloop.agent.prompts import NUDGE
from pytest_agentloop.agent.pseudo import NullAgent, ReferenceAgent
from pytest_agentloop.agent.tools import Toolbox
from pytest_agentloop.backends.base import ModelSpec
from pytest_agentloop.backends.openai import OpenAIBackend
from pytest_agentloop.canary import load_canary
from pytest_agentloop.cells import Cell, CellSettings, ToolMode
from pytest_agentloop.records import Limit
from pytest_agentloop.sandbox import SandboxPolicy
from pytest_agentloop.workspace import Workspace
from tests.support.scripted_server import ScriptedServer
from tests.support.tiny_canary import write_tiny_canary

FIX = [("calc.py", "def add(a, b):\n    return a + b\n")]


@dataclass
class Run:
    episode: Episode
    server: ScriptedServer
    workspace: Workspace


Runner = Callable[..., Run]


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Runner]:
    """`run("solve", turns=..., settings=..., ...)`: one attempt, the server stopped afterwards."""
    canary = load_canary(write_tiny_canary(tmp_path / "canary"))
    started: list[ScriptedServer] = []

    def attempt(
        behaviour: str,
        *,
        turns: int = 10,
        tokens: int = 100_000,
        seconds: float = 120.0,
        settings: CellSettings | None = None,
        retries: int = 3,
        latency_s: float = 0.0,
    ) -> Run:
        server = ScriptedServer(behaviour, edits=FIX, latency_s=latency_s).start()
        started.append(server)
        workspace = Workspace.create(canary, parent=tmp_path)
        backend = OpenAIBackend(
            ModelSpec.parse("openai:scripted"), server.url, retries=retries, backoff_s=0.01
        )
        task = AgentTask(
            canary=canary,
            cell=Cell(id="test", settings=settings or CellSettings()),
            budget=AttemptBudget(turns=turns, tokens=tokens, seconds=seconds),
            toolbox=Toolbox(workspace, canary.spec.test_command, SandboxPolicy(timeout_s=60)),
        )
        try:
            return Run(LoopAgent(backend).run(task), server, workspace)
        finally:
            backend.close()

    yield attempt
    for server in started:
        server.stop()


def counters(episode: Episode) -> dict[str, Any]:
    return {
        "end": episode.end,
        "limit": episode.limit,
        "turns": episode.turns,
        "tool_calls": episode.tool_calls,
        "malformed": episode.malformed_tool_calls,
        "redundant": episode.redundant_tool_calls,
        "text": episode.text_tool_calls,
    }


def test_solve_finishes_pushed(run: Runner) -> None:
    result = run("solve")
    assert counters(result.episode) == {
        "end": "finished",
        "limit": None,
        "turns": 5,
        "tool_calls": 5,
        "malformed": 0,
        "redundant": 0,
        "text": 0,
    }
    assert result.episode.reason == "Done and pushed."
    assert result.workspace.pushed()
    assert "+    return a + b" in result.workspace.diff_from_baseline()
    turns = result.episode.transcript.turns
    assert [t.request_messages for t in turns] == [2, 4, 6, 8, 10]
    assert [t.native_tool_calls for t in turns] == [1] * 5
    assert "passed" in turns[1].results[0].output.splitlines()[0]
    assert result.episode.prompt_tokens == sum(t.usage.prompt_tokens for t in turns) > 0


def test_native_results_go_back_as_tool_messages(run: Runner) -> None:
    result = run("solve")
    second = result.server.requests[1]
    assert second["tools"] and second["max_tokens"] == 1024
    assistant, tool = second["messages"][2:4]
    [sent] = assistant["tool_calls"]
    assert (sent["function"]["name"], json.loads(sent["function"]["arguments"])["path"]) == (
        "write_file",
        "calc.py",
    )
    assert (tool["role"], tool["tool_call_id"]) == ("tool", sent["id"])
    assert tool["content"].startswith("wrote ")
    turns = result.episode.transcript.turns
    assert [t.request_chars for t in turns] == sorted(t.request_chars for t in turns)


def test_request_chars_match_what_was_sent(run: Runner) -> None:
    """The running total must equal a full recount of the messages the server received."""
    result = run("solve")
    for turn, body in zip(result.episode.transcript.turns, result.server.requests, strict=True):
        recount = 0
        for message in body["messages"]:
            recount += len(message.get("content") or "")
            for call in message.get("tool_calls", ()):
                recount += len(call["function"]["name"]) + len(call["function"]["arguments"])
        assert (turn.request_messages, turn.request_chars) == (len(body["messages"]), recount)


@pytest.mark.parametrize("tool_mode", ["native", "prompted"])
def test_solve_as_text_is_recovered(run: Runner, tool_mode: ToolMode) -> None:
    result = run("solve_as_text", settings=CellSettings(tool_mode=tool_mode))
    assert counters(result.episode) == {
        "end": "finished",
        "limit": None,
        "turns": 5,
        "tool_calls": 5,
        "malformed": 0,
        "redundant": 0,
        "text": 5,
    }
    assert result.workspace.pushed()
    last = result.server.requests[-1]
    assert last["messages"][-1]["role"] == "user"
    assert last["messages"][-1]["content"].startswith("[push done]")
    assert ("tools" in last) == (tool_mode == "native")
    if tool_mode == "prompted":
        assert "<tool_call>" in last["messages"][0]["content"]


def test_constrained_mode_sends_the_schema_and_no_tools(run: Runner) -> None:
    result = run("quits_at_once", settings=CellSettings(tool_mode="constrained"))
    body = result.server.requests[0]
    assert "tools" not in body
    schema = body["response_format"]["json_schema"]["schema"]
    assert {branch["properties"]["name"]["const"] for branch in schema["anyOf"]} >= {"finish", "write_file"}


def test_loop_one_call_runs_out_of_turns_redundantly(run: Runner) -> None:
    result = run("loop_one_call", turns=6)
    assert counters(result.episode) == {
        "end": "budget_exceeded",
        "limit": Limit.TURNS,
        "turns": 6,
        "tool_calls": 6,
        "malformed": 0,
        "redundant": 5,
        "text": 0,
    }


def test_never_calls_gets_nudged_and_runs_out_of_turns(run: Runner) -> None:
    result = run("never_calls", turns=4)
    assert counters(result.episode)["tool_calls"] == 0
    assert (result.episode.end, result.episode.limit) == ("budget_exceeded", Limit.TURNS)
    assert [body["messages"][-1]["content"] for body in result.server.requests[1:]] == [NUDGE] * 3


def test_broken_json_is_counted_and_explained(run: Runner) -> None:
    result = run("broken_json", turns=3)
    assert counters(result.episode) == {
        "end": "budget_exceeded",
        "limit": Limit.TURNS,
        "turns": 3,
        "tool_calls": 0,
        "malformed": 3,
        "redundant": 0,
        "text": 0,
    }
    assert {m.kind for t in result.episode.transcript.turns for m in t.malformed} == {"bad_json"}
    feedback = result.server.requests[1]["messages"][-1]
    assert feedback["role"] == "user" and "not valid JSON" in feedback["content"]


def test_calls_as_text_finish(run: Runner) -> None:
    result = run("calls_as_text")
    assert counters(result.episode) == {
        "end": "finished",
        "limit": None,
        "turns": 2,
        "tool_calls": 2,
        "malformed": 0,
        "redundant": 0,
        "text": 2,
    }
    assert "calc.py" in result.server.requests[1]["messages"][-1]["content"]


def test_quits_at_once(run: Runner) -> None:
    result = run("quits_at_once")
    assert (result.episode.end, result.episode.turns, result.episode.tool_calls) == ("finished", 1, 1)
    assert not result.workspace.pushed()


def test_escalates(run: Runner) -> None:
    result = run("escalates")
    assert (result.episode.end, result.episode.reason) == ("escalated", "The spec contradicts itself.")


def test_burns_tokens(run: Runner) -> None:
    result = run("burns_tokens", tokens=500_000)
    assert (result.episode.end, result.episode.limit, result.episode.turns) == (
        "budget_exceeded",
        Limit.TOKENS,
        1,
    )
    assert (result.episode.prompt_tokens, result.episode.completion_tokens) == (900_000, 100_000)


def test_flaky_is_absorbed_by_retries(run: Runner) -> None:
    result = run("flaky")
    assert (result.episode.end, result.episode.turns) == ("finished", 5)
    assert result.server.request_count == 9  # 5 answered + 4 failures retried
    assert result.workspace.pushed()


def test_flaky_without_retries_is_infra_not_the_model(run: Runner) -> None:
    result = run("flaky", retries=1)
    assert (result.episode.end, result.episode.turns, result.episode.limit) == ("infra_error", 1, None)
    assert "500" in result.episode.reason


def test_wall_time_budget(run: Runner) -> None:
    result = run("loop_one_call", seconds=0.5, latency_s=0.3, retries=1)
    assert (result.episode.end, result.episode.limit) == ("budget_exceeded", Limit.TIME)
    assert result.episode.turns == 1


def test_echo_reasoning_and_directives(run: Runner) -> None:
    result = run("solve", settings=CellSettings(directives=("completeness",), echo_reasoning=True))
    system = result.server.requests[0]["messages"][0]["content"]
    assert "list every file, function and site" in system
    assert result.episode.end == "finished"


@pytest.fixture
def task(tmp_path: Path) -> Iterator[AgentTask]:
    canary = load_canary(write_tiny_canary(tmp_path / "canary"))
    with Workspace.create(canary, parent=tmp_path) as workspace:
        toolbox = Toolbox(workspace, canary.spec.test_command, SandboxPolicy(timeout_s=60))
        yield AgentTask(
            canary=canary, cell=Cell(id="baseline"), budget=AttemptBudget(5, 1000, 60.0), toolbox=toolbox
        )


def test_reference_agent_replays_the_solution(task: AgentTask) -> None:
    episode = ReferenceAgent().run(task)
    assert [t.calls[0].name for t in episode.transcript.turns] == [
        "write_file",
        "run_tests",
        "commit",
        "push",
        "finish",
    ]
    assert (episode.end, episode.tool_calls, episode.prompt_tokens) == ("finished", 5, 0)
    assert "passed" in episode.transcript.turns[1].results[0].output.splitlines()[0]
    assert task.toolbox.workspace.pushed()


def test_reference_agent_replays_another_overlay(task: AgentTask, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    (wrong / "pkg").mkdir(parents=True)
    (wrong / "pkg" / "extra.py").write_text("X = 1\n")
    episode = ReferenceAgent(overlay=wrong).run(task)
    assert episode.transcript.turns[0].calls[0].arguments["path"] == "pkg/extra.py"
    assert "failed" in episode.transcript.turns[1].results[0].output.splitlines()[0]
    assert task.toolbox.workspace.changed_files() == ["pkg/extra.py"]


def test_reference_agent_escalates_a_trap(tmp_path: Path) -> None:
    toml = write_tiny_canary(tmp_path / "trap", tier="trap")
    toml.write_text(
        toml.read_text() + '\n[expect]\noutcome = "escalate"\n\n[reference]\nreason = "Contradiction."\n'
    )
    canary = load_canary(toml)
    with Workspace.create(canary, parent=tmp_path) as workspace:
        toolbox = Toolbox(workspace, canary.spec.test_command, SandboxPolicy())
        episode = ReferenceAgent().run(
            AgentTask(canary, Cell(id="baseline"), AttemptBudget(5, 1000, 60.0), toolbox)
        )
    assert (episode.end, episode.reason, episode.turns) == ("escalated", "Contradiction.", 1)


def test_null_agent_finishes_at_once(task: AgentTask) -> None:
    episode = NullAgent().run(task)
    assert (episode.end, episode.turns, episode.tool_calls) == ("finished", 1, 1)
    assert not task.toolbox.workspace.pushed()
