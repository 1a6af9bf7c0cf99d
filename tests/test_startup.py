"""Start-up as users meet it (issue 12, point 6): checks retried like chats, every start-up error one
line with or without -n, and the determinism probe inside the model's lease."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from recorded.replay import ReplayServer, Reply

from pytest_agentloop.backends.base import ModelSpec
from pytest_agentloop.backends.openai import OpenAIBackend
from tests._runs import run, tiny_suite
from tests.support.ollama_emulator import OllamaEmulator, OllamaModel
from tests.support.scripted_server import ScriptedServer

pytest_plugins = ["pytester"]

SMALL = OllamaModel("qwen3:0.6b", size=400 * 2**20)
FIX = [("calc.py", "def add(a, b):\n    return a + b\n")]


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer("solve", edits=FIX) as server:
        yield server


def test_one_failed_model_listing_at_start_is_retried() -> None:
    """A runtime still starting answers 503 (llama-server's /health 'Loading model', a proxy's 502):
    the start-up GET /models is retried with the chat's backoff instead of ending the run."""
    models = {"object": "list", "data": [{"id": "m"}]}
    with ReplayServer() as server:
        server.add("GET", "/v1/models", Reply(503, {"error": "Loading model"}), Reply(200, models))
        OpenAIBackend(ModelSpec.parse("openai:m"), f"{server.url}/v1", backoff_s=0.01).check()
        assert len(server.seen("GET", "/v1/models")) == 2


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_an_unknown_model_is_one_line_with_or_without_xdist(
    pytester: pytest.Pytester, scripted: ScriptedServer, workers: list[str]
) -> None:
    tiny_suite(pytester.path)
    result = run(pytester, "--agent-model=openai:nope", f"--agent-host={scripted.url}", *workers)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    result.stdout.fnmatch_lines(["*agentloop: model 'nope' not found on *; it has: scripted. Fix: *"])
    assert "INTERNALERROR" not in output and "Traceback" not in output


def test_the_probe_chats_inside_the_lease(pytester: pytest.Pytester) -> None:
    """With --agent-store the determinism probe chats with the model. On Ollama any chat loads the
    model it names (docs/api.md), so a probe before the lease loads it outside the memory guard."""
    tiny_suite(pytester.path)
    with OllamaEmulator([SMALL], edits=FIX) as ollama:
        result = run(
            pytester,
            f"--agent-model=ollama:{SMALL.name}",
            f"--agent-host={ollama.url}",
            f"--agent-store=sqlite:///{pytester.path / 'h.db'}",
        )
        assert result.ret == 0, result.stdout.str()
        calls = [(method, path) for method, path, _ in ollama.requests if method == "POST"]
    assert calls.index(("POST", "/api/generate")) < calls.index(("POST", "/api/chat"))
    assert ollama.loads == [(SMALL.name, 8192)]
    result.stdout.fnmatch_lines(["probe: ollama:qwen3:0.6b: *"])
