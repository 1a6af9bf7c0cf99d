"""The Ollama adapter against a real loopback server replaying recorded exchanges.

The exchanges follow ollama/ollama docs/api.md (/api/chat, /api/tags, /api/ps, /api/show,
/api/generate load and unload, /api/version); Ollama itself cannot run on the CI machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from recorded.replay import ReplayServer, Reply

from pytest_agentloop.backends.base import BackendError, ChatRequest, InfraError, ModelSpec
from pytest_agentloop.backends.lifecycle import LoadedModel, ManagedHost
from pytest_agentloop.backends.ollama import OllamaBackend, OllamaHost, to_ollama_messages

SPEC = ModelSpec.parse("ollama:qwen3:8b")
TOOL = {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer() as replay:
        yield replay


def test_native_chat_maps_tools_thinking_usage_and_durations(server: ReplayServer) -> None:
    """docs/api.md 'Chat request (with tools)': arguments come back as objects, ids may be absent."""
    server.load("ollama/chat_tool_call").load("ollama/host")
    backend = OllamaBackend(SPEC, server.url, num_ctx=8192, keep_alive="10m")
    first = backend.chat(
        ChatRequest(
            messages=[{"role": "user", "content": "go"}],
            tools=[TOOL],
            temperature=0.0,
            seed=3,
            reasoning=True,
            max_tokens=256,
            timeout_s=5,
        )
    )
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [
        ("", "read_file", {"path": "README.md"})
    ]
    assert first.reasoning == "I should read the file first." and first.finish_reason == "tool_calls"
    assert (first.usage.prompt_tokens, first.usage.completion_tokens) == (412, 38)
    assert first.model_s == pytest.approx(1.2)
    sent = server.seen("POST", "/api/chat")[0].body
    assert sent["stream"] is False and sent["think"] is True and sent["keep_alive"] == "10m"
    assert sent["options"] == {"num_predict": 256, "temperature": 0.0, "seed": 3, "num_ctx": 8192}
    assert sent["tools"] == [TOOL]

    second = backend.chat(ChatRequest(messages=[], json_schema={"type": "object"}, timeout_s=5))
    assert second.content.startswith('{"name": "read_file"') and not second.tool_calls  # call left in content
    assert second.finish_reason == "length"
    assert server.seen("POST", "/api/chat")[1].body["format"] == {"type": "object"}

    fingerprint = backend.fingerprint()
    assert fingerprint["runtime"] == "ollama 0.11.10" and fingerprint["quantization"] == "Q4_K_M"
    assert fingerprint["digest"].startswith("500a1f06")


def test_history_is_translated_to_native_shape() -> None:
    """docs/api.md 'Chat request (with history, with tools)': tool replies carry tool_name."""
    history: list[dict[str, Any]] = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "a"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "hello"},
    ]
    assistant, tool = to_ollama_messages(history)
    assert assistant["tool_calls"] == [{"function": {"name": "read_file", "arguments": {"path": "a"}}}]
    assert tool == {"role": "tool", "content": "hello", "tool_name": "read_file"}


def test_check_accepts_implicit_latest_and_rejects_unknown_models(server: ReplayServer) -> None:
    """docs/api.md 'List Local Models': names carry a tag; `llama3.2` means `llama3.2:latest`."""
    server.load("ollama/host")
    OllamaBackend(ModelSpec.parse("ollama:llama3.2"), server.url).check()
    with pytest.raises(BackendError, match=r"'qwen3:32b' not found .* it has: qwen3:8b, llama3.2:latest"):
        OllamaBackend(ModelSpec.parse("ollama:qwen3:32b"), server.url).check()


def test_missing_model_on_chat_is_a_usage_error(server: ReplayServer) -> None:
    """docs/api.md errors: 404 {"error": "model 'x' not found"}."""
    server.load("ollama/host").add("POST", "/api/chat", Reply(404, {"error": "model 'qwen3:4b' not found"}))
    with pytest.raises(BackendError, match=r"not found on .* it has: qwen3:8b"):
        OllamaBackend(ModelSpec.parse("ollama:qwen3:4b"), server.url).chat(
            ChatRequest(messages=[], timeout_s=5)
        )


def test_host_lists_loads_and_reads_metadata(server: ReplayServer) -> None:
    """docs/api.md /api/tags, /api/ps, /api/show model_info, /api/generate with keep_alive, /api/version."""
    server.load("ollama/host")
    host = OllamaHost(f"{server.url}/v1")
    assert isinstance(host, ManagedHost) and host.name == f"ollama@{server.url}"
    assert host.available_models() == ["qwen3:8b", "llama3.2:latest"]
    assert host.loaded_models() == [LoadedModel("qwen3:8b", 6654289920, 6654289920, 8192)]
    meta = host.model_metadata("qwen3:8b")
    assert (meta.architecture, meta.layers, meta.kv_heads, meta.head_dim_k, meta.head_dim_v) == (
        "qwen3",
        36,
        8,
        128,
        128,
    )
    assert (meta.context_max, meta.weights_bytes, meta.quantization) == (40960, 5225388164, "Q4_K_M")
    assert meta.digest and meta.digest.startswith("500a1f06") and meta.vocab_size == 151936
    host.load("qwen3:8b", 8192)
    assert server.seen("POST", "/api/generate")[-1].body == {
        "model": "qwen3:8b",
        "keep_alive": -1,
        "options": {"num_ctx": 8192},
    }
    # /api/ps still says 8192: a load at another context did not take, and every chat would reload.
    with pytest.raises(BackendError, match=r"loaded qwen3:8b at context 8192, not the 16384 asked"):
        host.load("qwen3:8b", 16384)
    assert host.version() == "0.11.10"


def test_unload_waits_for_ps_to_drop_the_model(server: ReplayServer) -> None:
    """docs/api.md 'Unload a model': keep_alive 0, then /api/ps until it is gone."""
    server.load("ollama/unload")
    OllamaHost(server.url, poll_s=0.01).unload("qwen3:8b")
    assert server.seen("POST", "/api/generate")[0].body == {"model": "qwen3:8b", "keep_alive": 0}
    assert len(server.seen("GET", "/api/ps")) == 2


def test_an_unload_that_hangs_is_reported(server: ReplayServer) -> None:
    """ollama#7606: the runner stays in 'Stopping…' and /api/ps keeps listing the model."""
    server.load("ollama/unload_hangs")
    with pytest.raises(InfraError, match=r"still lists qwen3:8b in /api/ps 0.2s after keep_alive:0"):
        OllamaHost(server.url, unload_timeout_s=0.2, poll_s=0.02).unload("qwen3:8b")
    assert 2 <= len(server.seen("GET", "/api/ps")) <= 12
