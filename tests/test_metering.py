"""The metering proxy between an external agent and its model: real loopback servers, real HTTP.

Upstream is the scripted OpenAI-compatible server (tests/support/scripted_server.py), whose replies
are known in advance; the client is httpx, speaking to the proxy exactly as an agent's OpenAI
client would (plain and `stream: true` requests). Each test checks what the proxy counted against
what the script is known to have said.
"""

from __future__ import annotations

import json
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pytest_agentloop.agent.base import AttemptBudget
from pytest_agentloop.agent.metering import Meter, MeteringProxy, StreamAssembler
from pytest_agentloop.agent.tools import Toolbox
from pytest_agentloop.cells import CellSettings
from pytest_agentloop.records import Limit
from pytest_agentloop.sandbox import SandboxPolicy
from pytest_agentloop.workspace import Workspace
from tests.support.scripted_server import ScriptedServer, stream_chunks

BASH = {
    "type": "function",
    "function": {
        "name": "bash",
        "parameters": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    },
}


def budget(turns: int = 10, tokens: int = 100_000) -> AttemptBudget:
    return AttemptBudget(turns=turns, tokens=tokens, seconds=60)


@pytest.fixture
def proxied(request: pytest.FixtureRequest) -> Iterator[tuple[ScriptedServer, MeteringProxy]]:
    behaviour, meter = request.param
    with (
        ScriptedServer(behaviour, edits=[("a.py", "x = 1\n")]) as server,
        MeteringProxy(server.url, meter) as proxy,
    ):
        yield server, proxy


def chat(url: str, history: list[dict[str, Any]], *, stream: bool = False, **extra: Any) -> httpx.Response:
    body = {"model": "scripted", "messages": history, "tools": [BASH], "stream": stream, **extra}
    return httpx.post(f"{url}/chat/completions", json=body, timeout=10)


def conversation(url: str, turns: int, **extra: Any) -> list[httpx.Response]:
    """An agent's loop: each reply goes back into the history, as a real agent sends it."""
    history: list[dict[str, Any]] = [{"role": "user", "content": "do the task"}]
    replies = []
    for _ in range(turns):
        response = chat(url, history, **extra)
        replies.append(response)
        if response.status_code != 200:
            break
        history.append(_message(response, extra.get("stream", False)))
    return replies


def _message(response: httpx.Response, streamed: bool) -> dict[str, Any]:
    if not streamed:
        return dict(response.json()["choices"][0]["message"])
    assembler = StreamAssembler()
    assembler.feed(response.content)
    return dict(assembler.completion()["choices"][0]["message"])


@pytest.mark.parametrize("proxied", [("bash_solve", Meter(budget()))], indirect=True)
def test_native_calls_and_tokens_are_counted_as_the_loop_counts_them(
    proxied: tuple[ScriptedServer, MeteringProxy],
) -> None:
    server, proxy = proxied
    replies = conversation(proxy.url, 3)
    meter = proxy.meter
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert len(meter.turns) == 3 and meter.tool_calls == 3 and meter.malformed_tool_calls == 0
    assert meter.text_tool_calls == 0
    sent = [r.json()["usage"] for r in replies]
    assert meter.prompt_tokens == sum(u["prompt_tokens"] for u in sent)
    assert meter.completion_tokens == sum(u["completion_tokens"] for u in sent)
    assert meter.turns[0].calls[0].arguments["command"].startswith("mkdir -p")
    assert len(server.requests) == 3  # nothing invented, nothing swallowed


@pytest.mark.parametrize("proxied", [("bash_solve", Meter(budget()))], indirect=True)
def test_a_stream_is_relayed_chunk_by_chunk_and_still_counted(
    proxied: tuple[ScriptedServer, MeteringProxy],
) -> None:
    """OpenAI's streaming contract: `data:` events of `chat.completion.chunk`, tool-call arguments
    split across deltas, `[DONE]` last; the usage event only for a client that asked for it."""
    _, proxy = proxied
    with httpx.stream(
        "POST",
        f"{proxy.url}/chat/completions",
        json={
            "model": "scripted",
            "messages": [{"role": "user", "content": "go"}],
            "tools": [BASH],
            "stream": True,
        },
        timeout=10,
    ) as response:
        events = [line for line in response.iter_lines() if line.startswith("data:")]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(event[5:]) for event in events[:-1]]
    assert all(chunk["choices"] for chunk in chunks), "a usage-only event reached a client that did not ask"
    assert len(chunks) > 3
    meter = proxy.meter
    assert meter.tool_calls == 1 and meter.malformed_tool_calls == 0
    assert meter.turns[0].calls[0].arguments["command"].startswith("mkdir -p")
    assert meter.prompt_tokens > 0 and meter.completion_tokens > 0 and not meter.tokens_estimated


@pytest.mark.parametrize("proxied", [("bash_solve", Meter(budget(turns=2)))], indirect=True)
def test_past_the_turn_budget_the_agent_is_refused_and_the_budget_named(
    proxied: tuple[ScriptedServer, MeteringProxy],
) -> None:
    server, proxy = proxied
    replies = conversation(proxy.url, 5)
    assert [r.status_code for r in replies] == [200, 200, 403]
    error = replies[-1].json()["error"]
    assert error["code"] == "budget_exceeded" and "turn budget of 2" in error["message"]
    assert proxy.meter.exceeded is Limit.TURNS and len(server.requests) == 2


@pytest.mark.parametrize("proxied", [("burns_tokens", Meter(budget(tokens=50_000)))], indirect=True)
def test_the_reply_that_crosses_the_token_budget_ends_the_attempt(
    proxied: tuple[ScriptedServer, MeteringProxy],
) -> None:
    _, proxy = proxied
    replies = conversation(proxy.url, 3, stream=True)
    assert [r.status_code for r in replies] == [200, 403]
    assert "token budget of 50,000" in replies[-1].json()["error"]["message"]
    assert proxy.meter.exceeded is Limit.TOKENS


@pytest.mark.parametrize("proxied", [("bash_solve_as_text", Meter(budget()))], indirect=True)
def test_calls_written_as_text_are_recovered_and_counted_as_such(
    proxied: tuple[ScriptedServer, MeteringProxy],
) -> None:
    _, proxy = proxied
    conversation(proxy.url, 2)
    assert proxy.meter.tool_calls == 2 and proxy.meter.text_tool_calls == 2


@pytest.mark.parametrize("proxied", [("broken_json", Meter(budget()))], indirect=True)
def test_malformed_calls_are_sub_typed_by_the_loops_parser(
    proxied: tuple[ScriptedServer, MeteringProxy],
) -> None:
    """broken_json declares `read_file`; its arguments are cut JSON: bad_json, or unknown_tool since
    the agent declared only `bash`. Either way malformed, never a usable call."""
    _, proxy = proxied
    conversation(proxy.url, 2)
    meter = proxy.meter
    assert meter.tool_calls == 0 and meter.malformed_tool_calls == 2
    assert {m.kind for turn in meter.turns for m in turn.malformed} <= {"bad_json", "unknown_tool"}


def test_repeats_are_redundant_until_the_work_tree_changes(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    meter = Meter(budget(), workspace=work)
    with ScriptedServer("bash_forever") as server, MeteringProxy(server.url, meter) as proxy:
        conversation(proxy.url, 3)  # ls, ls, ls: the last two repeat the first
        assert meter.redundant_tool_calls == 2
        (work / "new.py").write_text("x = 1\n")
        conversation(proxy.url, 1)  # the tree changed since: a fresh ls, not redundant
        assert meter.redundant_tool_calls == 2


def test_cell_settings_reach_the_model_and_the_reply_cap_holds() -> None:
    settings = CellSettings(temperature=0.3, seed=7, max_response_tokens=64)
    with (
        ScriptedServer("bash_solve") as server,
        MeteringProxy(server.url, Meter(budget()), settings=settings) as proxy,
    ):
        chat(proxy.url, [{"role": "user", "content": "go"}], max_tokens=4096, temperature=1.0)
    sent = server.requests[0]
    assert (sent["temperature"], sent["seed"], sent["max_tokens"]) == (0.3, 7, 64)


def test_an_unreachable_model_server_is_a_502_and_recorded() -> None:
    with ScriptedServer("solve") as server:
        dead = server.url
    meter = Meter(budget())
    with MeteringProxy(dead, meter) as proxy:
        response = chat(proxy.url, [{"role": "user", "content": "go"}])
    assert response.status_code == 502 and "connection refused" in response.json()["error"]["message"]
    assert meter.upstream_errors and meter.requests == 0  # the turn was given back


def test_the_assembler_rebuilds_what_the_stream_cut_up() -> None:
    completion = {
        "id": "c",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "message": {
                    "content": "Let me look.",
                    "tool_calls": [
                        {"id": "t1", "function": {"name": "bash", "arguments": '{"command": "ls -la"}'}}
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 5},
    }
    assembler = StreamAssembler()
    wire = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in stream_chunks(completion, True))
    for start in range(0, len(wire), 13):  # arbitrary TCP-sized pieces
        assembler.feed(wire[start : start + 13])
    rebuilt = assembler.completion()
    message = rebuilt["choices"][0]["message"]
    assert message["content"] == "Let me look."
    assert message["tool_calls"][0]["function"] == {"name": "bash", "arguments": '{"command": "ls -la"}'}
    assert rebuilt["usage"] == completion["usage"] and rebuilt["choices"][0]["finish_reason"] == "tool_calls"


def test_the_proxy_lists_the_upstream_models() -> None:
    with ScriptedServer("solve") as server, MeteringProxy(server.url, Meter(budget())) as proxy:
        listed = httpx.get(f"{proxy.url}/models", timeout=10).json()
    assert [m["id"] for m in listed["data"]] == ["scripted"]


def test_the_proxy_meters_a_workspace_of_a_real_attempt(tmp_path: Path) -> None:
    """Workspace and Toolbox as an attempt builds them: the tree walk sees a commit as a change."""
    from pytest_agentloop.canary import load_canary
    from tests.support.tiny_canary import write_tiny_canary

    canary = load_canary(write_tiny_canary(tmp_path / "canary"))
    with Workspace.create(canary, tmp_path) as workspace:
        Toolbox(workspace, canary.spec.test_command, SandboxPolicy())
        meter = Meter(budget(), workspace=workspace.root)
        with ScriptedServer("bash_forever") as server, MeteringProxy(server.url, meter) as proxy:
            conversation(proxy.url, 2)
            (workspace.root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
            conversation(proxy.url, 1)
    assert meter.redundant_tool_calls == 1


def test_an_agent_that_drops_its_connection_leaves_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    """Agents killed at a budget, or cancelling a stream, reset the connection mid-request: routine for
    the proxy, which keeps serving and prints nothing (a traceback used to land in the test's output)."""
    with ScriptedServer("solve") as server, MeteringProxy(server.url, Meter(budget())) as proxy:
        host, port = proxy.url.removeprefix("http://").removesuffix("/v1").split(":")
        for _ in range(3):
            with socket.create_connection((host, int(port)), timeout=10) as raw:
                raw.sendall(b'POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 100000\r\n\r\n{"mo')
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        listed = httpx.get(f"{proxy.url}/models", timeout=10)  # served after the resets
    assert listed.status_code == 200
    assert "Traceback" not in capfd.readouterr().err


def test_a_stream_to_an_unreachable_model_server_is_a_502_too() -> None:
    """A streaming agent asking a dead server gets an error reply it can read, not a dropped connection."""
    with ScriptedServer("solve") as server:
        dead = server.url
    meter = Meter(budget())
    with MeteringProxy(dead, meter) as proxy:
        response = chat(proxy.url, [{"role": "user", "content": "go"}], stream=True)
    assert response.status_code == 502 and "connection refused" in response.json()["error"]["message"]
    assert meter.upstream_errors and meter.requests == 0
