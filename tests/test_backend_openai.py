"""OpenAIBackend against a real loopback HTTP server replaying OpenAI-shaped replies.

The replies follow the OpenAI Chat Completions API reference (platform.openai.com/docs/api-reference/chat)
and the quirks reported by llama.cpp, Ollama and vLLM users (see shared/reference/runtime-apis.md §6).
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from recorded.replay import ReplayServer, Reply

from pytest_agentloop.backends.base import BackendError, ChatRequest, InfraError, ModelSpec
from pytest_agentloop.backends.openai import OpenAIBackend

SPEC = ModelSpec.parse("openai:qwen3-8b")
MODELS = {"object": "list", "data": [{"id": "qwen3-8b", "object": "model", "owned_by": "vllm"}]}
TOOL = {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}


def completion(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 50, "completion_tokens": 7, "total_tokens": 57},
        **extra,
    }


def ask(**fields: Any) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": "read README.md"}], timeout_s=5, **fields)


@pytest.fixture
def server() -> Any:
    with ReplayServer() as replay:
        replay.add("GET", "/v1/models", Reply(body=MODELS))
        yield replay


def backend(server: ReplayServer, **kwargs: Any) -> OpenAIBackend:
    return OpenAIBackend(SPEC, f"{server.url}/v1", backoff_s=0.01, **kwargs)


def test_string_and_object_arguments_and_empty_ids(server: ReplayServer) -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "a"}'}},
        {"id": "", "type": "function", "function": {"name": "read_file", "arguments": {"path": "b"}}},
        {"type": "function", "function": {"name": "done", "arguments": None}},
    ]
    server.add(
        "POST", "/v1/chat/completions", Reply(body=completion({"content": "\n\n", "tool_calls": calls}))
    )
    reply = backend(server).chat(ask(tools=[TOOL]))
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_1", "read_file", '{"path": "a"}'),
        ("", "read_file", {"path": "b"}),
        ("", "done", ""),
    ]
    assert reply.content == "\n\n"
    assert reply.finish_reason == "tool_calls"


def test_request_carries_only_the_fields_that_are_set(server: ReplayServer) -> None:
    server.add("POST", "/v1/chat/completions", Reply(body=completion({"content": "hi"})))
    chat = backend(server, extra_body={"top_k": 20})
    chat.chat(ask())
    chat.chat(ask(tools=[TOOL], temperature=0.0, seed=7, reasoning=False, json_schema={"type": "object"}))
    bare, full = (seen.body for seen in server.seen("POST", "/v1/chat/completions"))
    assert bare == {
        "model": "qwen3-8b",
        "messages": ask().messages,
        "max_tokens": 1024,
        "top_k": 20,
    }
    assert full["tools"] == [TOOL] and full["temperature"] == 0.0 and full["seed"] == 7
    assert full["reasoning_effort"] == "none"
    assert full["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "tool_call", "schema": {"type": "object"}, "strict": True},
    }


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_reasoning_under_either_name(server: ReplayServer, field: str) -> None:
    server.add("POST", "/v1/chat/completions", Reply(body=completion({"content": "ok", field: "hmm"})))
    assert backend(server).chat(ask()).reasoning == "hmm"


def test_usage_cached_tokens_and_llamacpp_timings(server: ReplayServer) -> None:
    body = completion(
        {"content": "ok"},
        usage={"prompt_tokens": 40, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 32}},
        timings={"prompt_n": 8, "cache_n": 32, "prompt_ms": 150.0, "predicted_n": 5, "predicted_ms": 350.0},
        system_fingerprint="b6000-abc",
    )
    server.add("POST", "/v1/chat/completions", Reply(body=body))
    chat = backend(server)
    reply = chat.chat(ask())
    usage = reply.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens) == (40, 5, 32)
    assert reply.model_s == pytest.approx(0.5)
    assert reply.latency_s > 0
    fingerprint = chat.fingerprint()
    assert fingerprint["system_fingerprint"] == "b6000-abc"
    assert fingerprint["server_model"] == MODELS["data"][0]
    assert fingerprint["base_url"] == f"{server.url}/v1"


def test_no_timings_means_no_model_time(server: ReplayServer) -> None:
    server.add("POST", "/v1/chat/completions", Reply(body=completion({"content": "ok"})))
    assert backend(server).chat(ask()).model_s is None


def test_5xx_is_retried_then_succeeds(server: ReplayServer) -> None:
    server.add(
        "POST", "/v1/chat/completions", Reply(503, "Loading model"), Reply(body=completion({"content": "ok"}))
    )
    assert backend(server).chat(ask()).content == "ok"
    assert len(server.seen("POST", "/v1/chat/completions")) == 2


def test_5xx_every_time_is_an_infra_error_naming_url_status_tries_and_body(server: ReplayServer) -> None:
    server.add("POST", "/v1/chat/completions", Reply(503, {"error": {"message": "Loading model"}}))
    with pytest.raises(InfraError) as caught:
        backend(server).chat(ask())
    assert str(caught.value).startswith(f"POST {server.url}/v1/chat/completions: 503 after 3 tries: ")
    assert "Loading model" in str(caught.value)
    assert len(server.seen("POST", "/v1/chat/completions")) == 3


def test_read_timeout_is_retried_then_infra_error(server: ReplayServer) -> None:
    server.add("POST", "/v1/chat/completions", Reply(body=completion({"content": "late"}), delay_s=0.5))
    with pytest.raises(InfraError, match="timed out after 2 tries"):
        backend(server, retries=2).chat(ChatRequest(messages=[], timeout_s=0.1))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_check_on_an_unreachable_host_says_what_to_do() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(BackendError) as caught:
        OpenAIBackend(SPEC, url).check()
    assert str(caught.value) == (
        f"cannot reach {url} (connection refused after 3 tries): is the server running? pass --agent-host URL"
    )


def test_chat_on_a_dead_host_is_an_infra_error_after_retries() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    with pytest.raises(InfraError, match=r"connection refused after 2 tries"):
        OpenAIBackend(SPEC, url, retries=2, backoff_s=0.01).chat(ask())


def test_unknown_model_on_chat_lists_the_host_models(server: ReplayServer) -> None:
    server.add(
        "POST", "/v1/chat/completions", Reply(404, {"error": {"message": "model 'qwen3-8b' not found"}})
    )
    with pytest.raises(BackendError) as caught:
        backend(server).chat(ask())
    message = str(caught.value)
    assert "'qwen3-8b' not found on" in message and server.url in message
    assert "it has: qwen3-8b" in message and "--agent-model openai:NAME" in message


def test_vllm_style_400_model_does_not_exist_is_a_usage_error(server: ReplayServer) -> None:
    body = {"object": "error", "message": "The model `qwen3-8b` does not exist.", "code": 404}
    server.add("POST", "/v1/chat/completions", Reply(400, body))
    with pytest.raises(BackendError, match="not found on"):
        backend(server).chat(ask())


def test_check_rejects_a_model_the_host_does_not_list(server: ReplayServer) -> None:
    other = OpenAIBackend(ModelSpec.parse("openai:gpt-9"), f"{server.url}/v1")
    with pytest.raises(BackendError, match=r"'gpt-9' not found .* it has: qwen3-8b"):
        other.check()
    backend(server).check()


def test_refused_key_is_a_usage_error(server: ReplayServer) -> None:
    server.add("POST", "/v1/chat/completions", Reply(401, {"error": {"message": "Incorrect API key"}}))
    with pytest.raises(BackendError, match="refused the API key"):
        backend(server, api_key="sk-wrong").chat(ask())
    assert server.requests[-1].headers["Authorization"] == "Bearer sk-wrong"


def test_other_4xx_is_infra_and_not_retried(server: ReplayServer) -> None:
    server.add("POST", "/v1/chat/completions", Reply(400, {"error": {"message": "context length exceeded"}}))
    with pytest.raises(InfraError, match=r"400: .*context length exceeded"):
        backend(server).chat(ask())
    assert len(server.seen("POST", "/v1/chat/completions")) == 1


def test_openai_key_goes_to_openai_only(monkeypatch: pytest.MonkeyPatch, server: ReplayServer) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    assert backend(server).api_key is None
    assert OpenAIBackend(SPEC, "https://api.openai.com/v1").api_key == "sk-secret"
    assert backend(server, api_key="local").api_key == "local"
