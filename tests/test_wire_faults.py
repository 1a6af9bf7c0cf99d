"""The OpenAI wire as real servers speak it, and a hung or dead server never scored against the model.

Every test talks HTTP to a real loopback server (tests/support/scripted_server.py) whose faults
follow documented behaviour: OpenAI's 429 with `Retry-After` (RFC 9110 §10.2.3: delay-seconds or
an HTTP-date), its permanent 400 "Unsupported parameter: 'max_tokens' ... use
'max_completion_tokens'" for o-series models, content as a list of parts (the Chat Completions
reference allows an array of content parts), replies without `usage`, `finish_reason: "length"`
when max_tokens cuts a reply, and a one-slot server that accepts a connection and never answers
while its slot is busy (llama-server with --parallel 1).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.agent.loop import LoopAgent
from pytest_agentloop.attempt import run_attempt
from pytest_agentloop.backends.base import BackendError, ChatRequest, InfraError, ModelSpec
from pytest_agentloop.backends.openai import OpenAIBackend, retry_after_s
from pytest_agentloop.canary import Canary, load_canary
from pytest_agentloop.cells import Cell, CellSettings
from pytest_agentloop.records import Attempt, Limit, Outcome
from pytest_agentloop.sandbox import SandboxPolicy
from tests.support.scripted_server import ScriptedServer
from tests.support.tiny_canary import FILES, write_tiny_canary

SPEC = ModelSpec.parse("openai:scripted")
SOLUTION = [("calc.py", FILES["solution/calc.py"])]


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    return load_canary(write_tiny_canary(tmp_path / "canary", turns=8))


@pytest.fixture
def servers() -> Iterator[list[ScriptedServer]]:
    started: list[ScriptedServer] = []
    yield started
    for server in started:
        server.stop()


def serve(servers: list[ScriptedServer], behaviour: str, **kwargs: Any) -> ScriptedServer:
    server = ScriptedServer(behaviour, edits=SOLUTION, **kwargs).start()
    servers.append(server)
    return server


def attempt(
    canary: Canary,
    server: ScriptedServer,
    tmp_path: Path,
    *,
    seconds: float | None = None,
    tokens: int | None = None,
    retries: int = 3,
    **backend: Any,
) -> Attempt:
    """One whole attempt (workspace, loop, grading) against `server`, with the canary's budget
    replaced where given."""
    if seconds is not None:
        budget = canary.spec.budget.model_copy(update={"seconds": seconds})
        canary = replace(canary, spec=canary.spec.model_copy(update={"budget": budget}))
    chat = OpenAIBackend(SPEC, server.url, retries=retries, backoff_s=0.01, **backend)
    try:
        return run_attempt(
            canary,
            LoopAgent(chat),
            model=SPEC.raw,
            cell=Cell(id="t", settings=CellSettings(tokens=tokens)),
            limits=SandboxPolicy(timeout_s=60),
            parent=tmp_path,
        )
    finally:
        chat.close()


def ask(deadline_in: float | None = None, timeout_s: float = 300.0) -> ChatRequest:
    deadline = None if deadline_in is None else time.monotonic() + deadline_in
    return ChatRequest(messages=[{"role": "user", "content": "hi"}], timeout_s=timeout_s, deadline=deadline)


# -- Retry-After --------------------------------------------------------------------------------


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert retry_after_s("3") == 3.0 and retry_after_s(" 0.5 ") == 0.5
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < (retry_after_s(later) or 0) <= 30
    assert retry_after_s(format_datetime(datetime(2000, 1, 1, tzinfo=UTC), usegmt=True)) == 0.0
    assert retry_after_s("soon") is None and retry_after_s("") is None and retry_after_s("nan") is None


@pytest.mark.parametrize("header", ["seconds", "http-date"])
def test_retry_after_is_honoured(servers: list[ScriptedServer], header: str) -> None:
    """A 429 with Retry-After: the retry waits as asked, instead of three tries in a blink."""

    def in_two_seconds() -> str:  # dated as the 429 goes out, so load before it cannot shorten the wait
        return format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)

    server = serve(servers, "rate_limited", retry_after="1" if header == "seconds" else in_two_seconds)
    backend = OpenAIBackend(SPEC, server.url, backoff_s=0.01)
    started = time.monotonic()
    reply = backend.chat(ask(deadline_in=60))
    assert time.monotonic() - started >= 0.9  # an HTTP-date has one-second resolution
    assert server.request_count == 2 and reply.tool_calls
    assert reply.retries and reply.retries[0].startswith("429") and reply.infra_s >= 0.9


def test_retry_after_beyond_the_budget_gives_up_at_once_with_the_reason(
    servers: list[ScriptedServer],
) -> None:
    server = serve(servers, "rate_limited", retry_after="120")
    started = time.monotonic()
    with pytest.raises(InfraError) as caught:
        OpenAIBackend(SPEC, server.url, backoff_s=0.01).chat(ask(deadline_in=5))
    assert time.monotonic() - started < 4 and server.request_count == 1
    assert "asked to retry after 120s, beyond the" in str(caught.value) and not caught.value.cut_off


# -- a hung or dead server ------------------------------------------------------------------------


def test_a_hung_server_costs_the_time_left_once_not_a_fresh_timeout_per_try(
    servers: list[ScriptedServer],
) -> None:
    """One try, cut at the deadline (not three tries of 300 s each)."""
    server = serve(servers, "hang")
    started = time.monotonic()
    with pytest.raises(InfraError) as caught:
        OpenAIBackend(SPEC, server.url, backoff_s=0.01).chat(ask(deadline_in=1.5))
    assert time.monotonic() - started < 30 and server.request_count == 1
    assert caught.value.cut_off and "timed out after 1 try" in str(caught.value)


def test_a_model_that_never_answers_is_infra_not_no_tool_calls(
    servers: list[ScriptedServer], canary: Canary, tmp_path: Path
) -> None:
    server = serve(servers, "hang")
    result = attempt(canary, server, tmp_path, seconds=2)
    assert result.outcome is Outcome.INFRA_ERROR and result.turns == 0
    assert result.reason.startswith("no reply within the 2s time budget")
    assert result.wall_s < 2 + 30  # the budget plus the stated margin, never a fresh timeout per retry
    assert result.transcript is not None
    [cut] = result.transcript.failed_requests
    assert cut.cut_off and cut.turn == 0 and cut.request_messages == 2 and "timed out" in cut.error
    assert result.infra_s > 1


def test_a_server_that_hangs_mid_attempt_is_infra(
    servers: list[ScriptedServer], canary: Canary, tmp_path: Path
) -> None:
    """The first reply comes at once, the second request hangs until the budget cuts it: time lost
    to a hung server (ten times the slowest reply and more than a tenth of the budget) is infra."""
    server = serve(servers, "hang_every_other")
    result = attempt(canary, server, tmp_path, seconds=3)
    assert (result.outcome, result.turns) == (Outcome.INFRA_ERROR, 1)
    assert "time budget ran out with" in result.reason and "lost in failed requests" in result.reason


def test_a_slow_model_cut_by_the_budget_is_the_models_time(
    servers: list[ScriptedServer], canary: Canary, tmp_path: Path
) -> None:
    """Every reply takes 0.6 s; the budget cuts the third request short: that is the model's time."""
    server = serve(servers, "loop_one_call", latency_s=0.6)
    result = attempt(canary, server, tmp_path, seconds=1.5)
    assert (result.outcome, result.limit) == (Outcome.BUDGET_EXCEEDED, Limit.TIME)
    assert result.transcript is not None and result.transcript.failed_requests[-1].cut_off


def test_every_infra_retry_keeps_its_reason(
    servers: list[ScriptedServer], canary: Canary, tmp_path: Path
) -> None:
    server = serve(servers, "flaky")
    result = attempt(canary, server, tmp_path)
    assert result.outcome is Outcome.PASSED and result.infra_s >= 0
    assert result.transcript is not None
    retried = [r for turn in result.transcript.turns for r in turn.retries]
    assert len(retried) == 4 and all(r.startswith("500: scripted failure on request") for r in retried)


def test_an_attempt_retried_for_infra_keeps_the_reasons_of_the_tries_it_discarded(
    servers: list[ScriptedServer], canary: Canary, tmp_path: Path
) -> None:
    server = serve(servers, "solve")
    server.behaviour = lambda _server, _body: {"status": 503}
    chat = OpenAIBackend(SPEC, server.url, retries=1, backoff_s=0.01)
    result = run_attempt(canary, LoopAgent(chat), model=SPEC.raw, infra_retries=2, parent=tmp_path)
    assert (result.outcome, result.infra_retries, len(result.infra_reasons)) == (Outcome.INFRA_ERROR, 2, 2)
    assert all("503" in reason for reason in result.infra_reasons)


# -- the reply as real servers send it --------------------------------------------------------------


def test_content_as_parts_is_joined_and_the_calls_in_it_are_found(
    servers: list[ScriptedServer], canary: Canary, tmp_path: Path
) -> None:
    result = attempt(canary, serve(servers, "content_parts"), tmp_path)
    assert (result.outcome, result.text_tool_calls, result.malformed_tool_calls) == (Outcome.PASSED, 5, 0)


def test_no_usage_is_unknown_and_the_token_budget_runs_on_the_estimate(
    servers: list[ScriptedServer], canary: Canary, tmp_path: Path
) -> None:
    passed = attempt(canary, serve(servers, "no_usage"), tmp_path)
    assert passed.outcome is Outcome.PASSED
    assert (passed.prompt_tokens, passed.completion_tokens) == (None, None)
    assert passed.estimated_tokens is not None and passed.estimated_tokens > 0
    assert passed.transcript is not None and all(t.usage_estimated for t in passed.transcript.turns)
    over = attempt(canary, serve(servers, "no_usage"), tmp_path, tokens=100)
    assert (over.outcome, over.limit) == (Outcome.BUDGET_EXCEEDED, Limit.TOKENS)
    assert "estimated" in over.reason and over.prompt_tokens is None


def test_replies_cut_at_max_tokens_are_counted(
    servers: list[ScriptedServer], canary: Canary, tmp_path: Path
) -> None:
    result = attempt(canary, serve(servers, "truncating"), tmp_path)
    assert result.truncated_replies == result.turns == 7
    assert result.malformed_tool_calls == 2 and result.outcome is Outcome.PASSED


def test_max_completion_tokens_is_chosen_when_the_server_asks_for_it(
    servers: list[ScriptedServer], canary: Canary, tmp_path: Path
) -> None:
    server = serve(servers, "wants_max_completion_tokens")
    result = attempt(canary, server, tmp_path)
    assert result.outcome is Outcome.PASSED and result.infra_retries == 0
    first, *rest = server.requests
    assert "max_tokens" in first and all("max_completion_tokens" in r and "max_tokens" not in r for r in rest)
    assert len(rest) == 5  # one refused request, resent once; every later one asked right


def test_max_completion_tokens_can_be_set(servers: list[ScriptedServer]) -> None:
    server = serve(servers, "wants_max_completion_tokens")
    OpenAIBackend(SPEC, server.url, max_tokens_field="max_completion_tokens").chat(ask())
    assert server.request_count == 1 and "max_completion_tokens" in server.requests[0]
    with pytest.raises(BackendError, match=r"max_tokens_field = 'max_new_tokens'.*use one of max_tokens"):
        OpenAIBackend(SPEC, server.url, max_tokens_field="max_new_tokens")


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, "Unrecognized request argument supplied: top_k"),
        (422, "value is not a valid float"),
        (404, "Unknown endpoint"),
    ],
)
def test_a_permanent_4xx_is_a_usage_error_in_the_servers_words(
    servers: list[ScriptedServer], status: int, error: str
) -> None:
    server = serve(servers, "solve")
    server.behaviour = lambda _s, _b: {"status": status, "error": {"message": error}}
    with pytest.raises(BackendError) as caught:
        OpenAIBackend(SPEC, server.url, backoff_s=0.01).chat(ask())
    if status != 404:  # a 404 reads as an unknown model, which names the models the host has
        assert error in str(caught.value) and "retrying cannot help" in str(caught.value)
    assert server.request_count == 1


def test_a_context_overflow_is_this_attempts_infra_not_a_usage_error(servers: list[ScriptedServer]) -> None:
    """llama-server's 400 "the request exceeds the available context size" ends one attempt only."""
    server = serve(servers, "solve")
    words = "the request exceeds the available context size, try increasing it"
    server.behaviour = lambda _s, _b: {"status": 400, "error": {"message": words}}
    with pytest.raises(InfraError, match="exceeds the available context size"):
        OpenAIBackend(SPEC, server.url).chat(ask())


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_a_permanent_4xx_stops_the_run_once_with_exit_4(
    pytester: pytest.Pytester, workers: list[str]
) -> None:
    """One line, exit status 4, with or without xdist (where pytest.exit in a worker is an INTERNALERROR)."""
    write_tiny_canary(pytester.path / "canaries" / "a", id="a", tier="lite")
    write_tiny_canary(pytester.path / "canaries" / "b", id="b", tier="lite")
    with ScriptedServer("refuses_request") as server:
        result = pytester.runpytest_subprocess(
            "canaries",
            "-p",
            "no:cacheprovider",
            "--ignore-glob=*/repo/*",
            "--ignore-glob=*/hidden/*",
            "--ignore-glob=*/solution/*",
            *workers,
            "--agent-model=openai:scripted",
            f"--agent-host={server.url}",
            "--repeat=3",
            "--agent-no-smoke",
            timeout=300,
        )
        assert server.request_count <= len(workers) or server.request_count == 1  # one per worker at most
    assert result.ret == 4
    output = result.stdout.str() + result.stderr.str()
    assert output.count("Unrecognized request argument supplied: top_k") == 1, output
    assert "Traceback" not in output and "INTERNALERROR" not in output and "retrying cannot help" in output


# -- serving telemetry ------------------------------------------------------------------------------


def test_serving_telemetry_from_the_servers_timings(
    servers: list[ScriptedServer], canary: Canary, tmp_path: Path
) -> None:
    """llama.cpp-style `timings` at 40 tokens/s decode (prefill ten times faster)."""
    result = attempt(canary, serve(servers, "solve", decode_tps=40.0), tmp_path)
    assert result.telemetry == "server"
    assert result.decode_tps == pytest.approx(40.0, rel=0.01)
    assert result.prefill_tps == pytest.approx(400.0, rel=0.01)
    assert result.ttft_s is not None and result.ttft_s >= 0
    assert result.transcript is not None and all(t.decode_tps for t in result.transcript.turns)


def test_serving_telemetry_without_timings_is_measured_or_unknown(
    servers: list[ScriptedServer], canary: Canary, tmp_path: Path
) -> None:
    """No usage and no timings: nothing to measure a rate on, so nothing is claimed."""
    result = attempt(canary, serve(servers, "no_usage"), tmp_path)
    assert (result.telemetry, result.decode_tps, result.prefill_tps, result.ttft_s) == (
        None,
        None,
        None,
        None,
    )


def test_a_retry_after_beyond_the_budget_ends_the_attempt_as_infra_with_the_servers_reason(
    servers: list[ScriptedServer], canary: Canary, tmp_path: Path
) -> None:
    server = serve(servers, "rate_limited", retry_after="600")
    result = attempt(canary, server, tmp_path, seconds=30)
    assert result.outcome is Outcome.INFRA_ERROR and "asked to retry after 600s" in result.reason
    assert result.wall_s < 30 and server.request_count == 1


# -- a harness bug costs one infra_error, never the record ----------------------------------------


class BrokenBackend:
    """A backend with a bug: its chat raises something no backend should."""

    spec = SPEC

    def chat(self, request: ChatRequest) -> Any:
        raise KeyError("choices")

    def fingerprint(self) -> dict[str, Any]:
        return {}

    def close(self) -> None:
        pass


class BrokenAgent:
    """An agent with a bug: it raises before producing an episode."""

    def run(self, task: Any) -> Any:
        raise RuntimeError("the agent fell over\nwith a second line")


def test_a_harness_bug_inside_the_loop_is_an_infra_record_naming_it(canary: Canary, tmp_path: Path) -> None:
    result = run_attempt(canary, LoopAgent(BrokenBackend()), model=SPEC.raw, parent=tmp_path)
    assert result.outcome is Outcome.INFRA_ERROR and result.reason == "harness error: KeyError: 'choices'"
    assert result.transcript is not None and result.transcript.spec  # the transcript so far is kept


def test_a_harness_bug_outside_the_loop_is_an_infra_record_and_retried(
    canary: Canary, tmp_path: Path
) -> None:
    result = run_attempt(canary, BrokenAgent(), model=SPEC.raw, infra_retries=1, parent=tmp_path)
    assert result.outcome is Outcome.INFRA_ERROR and result.infra_retries == 1
    assert result.reason == "harness error: RuntimeError: the agent fell over with a second line"
    assert result.infra_reasons == [result.reason]
