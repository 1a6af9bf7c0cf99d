"""The embedded backend with the real SmolLM2-135M GGUF served by xllamacpp on loopback."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from pytest_agentloop.backends.base import BackendError, ChatRequest, ModelSpec
from pytest_agentloop.backends.embedded import EmbeddedBackend

SPEC = ModelSpec.parse("embedded:smollm2-135m")
CALL_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "enum": ["read_file", "done"]},
        "arguments": {
            "type": "object",
            "properties": {"path": {"type": "string"}},
            "required": ["path"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "arguments"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def embedded() -> Iterator[EmbeddedBackend]:
    backend = EmbeddedBackend(SPEC, n_ctx=2048, threads=2)
    yield backend
    backend.close()


def say(text: str, **fields: object) -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": text}], timeout_s=60, **fields)  # type: ignore[arg-type]


def test_answers_a_chat_request_and_reports_usage(embedded: EmbeddedBackend) -> None:
    embedded.check()
    reply = embedded.chat(say("Say hello.", max_tokens=8, temperature=0.0, seed=1, reasoning=False))
    assert reply.content.strip()
    assert reply.usage.prompt_tokens > 0 and 0 < reply.usage.completion_tokens <= 8
    assert reply.model_s is not None and reply.model_s > 0
    assert reply.finish_reason in ("stop", "length")


def test_fingerprint_names_the_exact_weights(embedded: EmbeddedBackend) -> None:
    fingerprint = embedded.fingerprint()
    assert fingerprint["runtime"].startswith("llama.cpp (xllamacpp ")
    assert fingerprint["quantization"] == "Q4_1" and fingerprint["architecture"] == "llama"
    assert re.fullmatch(r"[0-9a-f]{64}", fingerprint["sha256"])
    assert fingerprint["file_bytes"] == embedded.model_path.stat().st_size
    assert fingerprint["props"]["n_ctx"] == 2048 and fingerprint["n_ctx"] == 2048
    assert fingerprint["server_model"]["id"] == "smollm2-135m"


def test_constrained_decoding_returns_a_valid_tool_call(embedded: EmbeddedBackend) -> None:
    reply = embedded.chat(
        say("Read the file README.md", max_tokens=64, temperature=0.0, seed=1, json_schema=CALL_SCHEMA)
    )
    call = json.loads(reply.content)
    assert set(call) == {"name", "arguments"} and call["name"] in ("read_file", "done")
    assert set(call["arguments"]) == {"path"} and isinstance(call["arguments"]["path"], str)


def test_close_stops_the_server() -> None:
    backend = EmbeddedBackend(SPEC, n_ctx=512, threads=1)
    assert httpx.get(f"{backend.base_url}/models").status_code == 200
    assert backend.resident_bytes() > 0
    backend.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{backend.base_url}/models")


def test_a_missing_gguf_is_a_usage_error(tmp_path: object) -> None:
    with pytest.raises(BackendError, match=r"no such GGUF file; use embedded:smollm2-135m"):
        EmbeddedBackend(ModelSpec.parse("embedded:/nowhere/model.gguf"))
