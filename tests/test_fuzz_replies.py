"""Hypothesis fuzz of every reply parser: no response body, whatever its shape, raises anything but
the harness's own InfraError, and whatever parses can be recorded (a transcript turn that encodes
to UTF-8 JSON). The bodies (tests/support/fuzz_bodies.py) mix OpenAI-shaped replies with the faults
real servers and proxies send: content as a list of parts, wrong types for usage, finish_reason and
tool_calls, huge integers, deep nesting, lone surrogates, non-JSON, truncated JSON, HTML error pages,
empty choices. benchmarks/bench_fuzz.py runs the same properties over at least 10,000 bodies.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_agentloop.agent.calls import parse_reply, parse_text
from pytest_agentloop.agent.tools import TOOL_ARGS
from pytest_agentloop.backends.base import ChatResponse, InfraError, ModelSpec, RawToolCall, clean_json
from pytest_agentloop.backends.ollama import OllamaBackend
from pytest_agentloop.backends.openai import OpenAIBackend
from pytest_agentloop.records import Turn
from tests.support.fuzz_bodies import completion, json_values, ollama_reply, raw_bodies, texts

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
URL = "http://127.0.0.1:9/v1/chat/completions"


# Built once: a backend's HTTP client loads the system's CA store, which costs more than a parse.
OPENAI = OpenAIBackend(ModelSpec.parse("openai:fuzz"), "http://127.0.0.1:9/v1")
OLLAMA = OllamaBackend(ModelSpec.parse("ollama:fuzz"), "http://127.0.0.1:9")


def openai_backend() -> OpenAIBackend:
    return OPENAI


def ollama_backend() -> OllamaBackend:
    return OLLAMA


def read(backend: OpenAIBackend, raw: bytes, status: int = 200) -> ChatResponse | None:
    """The backend's reading of one body (None: an InfraError), checked to be recordable."""
    response = httpx.Response(status, content=raw, request=httpx.Request("POST", URL))
    try:
        reply = backend.read_reply(response)
    except InfraError as exc:
        assert str(exc)  # a reason, always
        str(exc).encode("utf-8")
        return None
    record(reply)
    return reply


def record(reply: ChatResponse) -> None:
    """What the loop does with a reply: parse its calls and keep it in a transcript turn."""
    parsed = parse_reply(reply, TOOL_ARGS, "fuzz")
    turn = Turn(
        index=0,
        request_messages=1,
        request_chars=1,
        content=reply.content,
        reasoning=reply.reasoning,
        calls=parsed.calls,
        malformed=parsed.malformed,
        finish_reason=reply.finish_reason,
        native_tool_calls=len(reply.tool_calls),
    )
    if reply.usage is not None:
        turn.usage = reply.usage
    json.dumps(turn.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")


@FUZZ
@given(raw_bodies(completion))
def test_openai_replies_never_crash(raw: bytes) -> None:
    read(openai_backend(), raw)


@FUZZ
@given(raw_bodies(ollama_reply))
def test_ollama_native_replies_never_crash(raw: bytes) -> None:
    read(ollama_backend(), raw)


@FUZZ
@given(st.integers(min_value=100, max_value=599), raw_bodies(completion))
def test_any_status_with_any_body_is_a_reply_or_a_named_error(status: int, raw: bytes) -> None:
    """Any status: a 2xx may parse; the rest are InfraErrors or, for 4xx the user must fix, BackendErrors."""
    from pytest_agentloop.backends.base import BackendError

    try:
        reply = read(openai_backend(), raw, status)
    except BackendError as exc:
        assert 400 <= status < 500 and str(exc)
        return
    assert reply is None or 200 <= status < 300


@FUZZ
@given(
    st.lists(
        texts | st.sampled_from(['{"name": "read_file", "arguments": ', "}", "[", "\\ud800"]), max_size=12
    )
)
def test_text_calls_never_crash(pieces: list[str]) -> None:
    """Calls written as text: tags, fences and bare objects, cut, nested or escaped any way."""
    content = clean_json("".join(pieces))  # as the wire hands it over: no raw lone surrogates
    for truncated in (False, True):
        parsed = parse_text(content, TOOL_ARGS, "t", truncated=truncated)
        record(ChatResponse(content=content, finish_reason="length" if truncated else "stop"))
        assert all(call.name in TOOL_ARGS for call in parsed.calls)


@FUZZ
@given(st.lists(st.tuples(texts, st.sampled_from(sorted(TOOL_ARGS)) | texts, json_values), max_size=4))
def test_native_calls_never_crash(calls: list[tuple[str, str, object]]) -> None:
    calls = clean_json([list(call) for call in calls])  # as the wire hands them over: no lone surrogates
    raw = [
        RawToolCall(id=i, name=n, arguments=a if isinstance(a, str | dict) else json.dumps(a))
        for i, n, a in calls
    ]
    record(ChatResponse(tool_calls=raw, finish_reason="tool_calls"))


# -- the shapes the issue found, one by one ---------------------------------------------------------


def body(message: dict[str, object], **extra: object) -> bytes:
    return json.dumps({"choices": [{"message": message, "finish_reason": "stop"}], **extra}).encode()


def test_content_parts_are_joined() -> None:
    """OpenAI and vLLM may send `content` as a list of parts; the text is their concatenation."""
    parts = [
        {"type": "text", "text": "<tool_call>"},
        {"type": "text", "text": "x</tool_call>"},
        {"type": "image"},
    ]
    reply = read(openai_backend(), body({"content": parts, "reasoning_content": ["think", "ing"]}))
    assert reply is not None and (reply.content, reply.reasoning) == ("<tool_call>x</tool_call>", "thinking")


@pytest.mark.parametrize(
    "usage",
    [
        None,
        "7",
        {"prompt_tokens": "7", "completion_tokens": 3},
        {"prompt_tokens": 10**40, "completion_tokens": 3},
    ],
)
def test_usage_of_the_wrong_type_or_size_is_unknown_not_zero(usage: object) -> None:
    reply = read(openai_backend(), body({"content": "hi"}, usage=usage))
    assert reply is not None and reply.usage is None


def test_llamacpp_timings_stand_in_for_a_missing_usage() -> None:
    timings = {"prompt_n": 8, "cache_n": 32, "prompt_ms": 80.0, "predicted_n": 5, "predicted_ms": 100.0}
    reply = read(openai_backend(), body({"content": "hi"}, timings=timings))
    assert reply is not None and reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.cached_tokens) == (
        40,
        5,
        32,
    )
    assert reply.model_s == pytest.approx(0.18)


def test_lone_surrogates_become_replacement_characters() -> None:
    call = b'{"function": {"name": "write_file", "arguments": {"path": "x\\udfff.py", "content": "c"}}}'
    raw = b'{"choices": [{"message": {"content": "a\\ud800b", "tool_calls": [' + call + b"]}}]}"
    reply = read(openai_backend(), raw)
    assert reply is not None and reply.content == "a\ufffdb"
    assert reply.tool_calls[0].arguments == {"path": "x\ufffd.py", "content": "c"}


@pytest.mark.parametrize(
    ("raw", "said"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        (b'{"choices": [{"message": {"content": ' + b"[" * 80 + b"]" * 80 + b"}}]}", "nested deeper than 64"),
        (
            b'{"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": 1'
            + b"0" * 5000
            + b"}}",
            "not JSON",
        ),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "not JSON: <html>"),
        (b'{"choices": [{"message": {"content": "cut', "not JSON"),
        (b'{"choices": []}', "no choices[0].message: an object with keys choices"),
        (b'{"error": {"message": "model is loading"}}', "answered with an error: model is loading"),
        (b"", "not JSON"),
    ],
)
def test_unusable_bodies_are_infra_errors_that_say_why(raw: bytes, said: str) -> None:
    response = httpx.Response(200, content=raw, request=httpx.Request("POST", URL))
    with pytest.raises(InfraError) as caught:
        openai_backend().read_reply(response)
    assert said in str(caught.value)


def test_wrong_types_for_finish_reason_and_tool_calls_are_dropped() -> None:
    message = {
        "content": "ok",
        "tool_calls": [None, 3, {"function": "x"}, {"id": 7, "function": {"name": 5}}],
    }
    raw = json.dumps({"choices": [{"message": message, "finish_reason": ["length"]}]}).encode()
    reply = read(openai_backend(), raw)
    assert reply is not None and reply.finish_reason is None
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [("", "", ""), ("7", "", "")]
