"""Serving telemetry and the wire's diagnoses: known truth from constructed records, then the whole
plugin against a scripted server that reports llama.cpp-style `timings` (prompt_n/prompt_ms,
predicted_n/predicted_ms, as llama-server's /v1/chat/completions returns them) and slows down as
it runs, as a GPU under VRAM pressure or thermal throttling does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pytest_agentloop.analysis.diagnosis import ceiling_diagnoses, wire_diagnosis
from pytest_agentloop.backends.base import ChatResponse, ServingTiming
from pytest_agentloop.records import Attempt, Limit, Usage
from pytest_agentloop.telemetry import Serving, serving_lines, throughput_drop
from tests._attempts import attempt
from tests.support.scripted_server import ScriptedServer
from tests.support.tiny_canary import FILES, write_tiny_canary

START = datetime(2026, 1, 1, tzinfo=UTC)


def timed(rates: list[float], model: str = "m") -> list[Attempt]:
    return [
        attempt(
            "passed",
            model=model,
            repetition=i,
            started=START + timedelta(minutes=i),
            decode_tps=rate,
            telemetry="measured",
        )
        for i, rate in enumerate(rates)
    ]


def test_turn_and_attempt_rates_from_server_timings() -> None:
    serving = Serving()
    first = ChatResponse(
        latency_s=1.5, timing=ServingTiming(prefill_tokens=400, prefill_s=0.5, decode_tokens=40, decode_s=1.0)
    )
    turn = serving.add(first, 40)
    assert (turn.ttft_s, turn.prefill_tps, turn.decode_tps) == (0.5, 800.0, 40.0)
    serving.add(
        ChatResponse(
            latency_s=3.0,
            timing=ServingTiming(prefill_tokens=100, prefill_s=0.5, decode_tokens=20, decode_s=2.0),
        ),
        20,
    )
    assert serving.fields() == {
        "ttft_s": 0.75,
        "prefill_tps": 500.0,
        "decode_tps": 20.0,
        "telemetry": "server",
    }


def test_rates_measured_on_the_wall_clock_when_the_server_reports_none() -> None:
    serving = Serving()
    assert serving.add(ChatResponse(latency_s=2.0, usage=Usage(completion_tokens=30)), 30).decode_tps == 15.0
    serving.add(ChatResponse(latency_s=1.0), None)  # no usage: nothing to measure
    assert serving.fields() == {"decode_tps": 15.0, "telemetry": "measured"}
    assert Serving().fields() == {"decode_tps": None, "telemetry": None}


def test_a_throughput_drop_is_flagged_and_a_steady_run_is_not() -> None:
    assert throughput_drop(timed([40, 41, 39, 40, 38, 41])) is None
    drop = throughput_drop(timed([40, 41, 39, 30, 20, 21]))
    assert drop is not None and drop.startswith("throughput fell: decode 21.0 tok/s over the last 3")
    assert "VRAM pressure or thermal throttling?" in drop
    assert throughput_drop(timed([40, 41, 39, 20, 20])) is None  # too few to compare two windows
    lines = serving_lines(timed([40, 41, 39, 30, 20, 21]) + timed([10, 10, 10], model="other"))
    assert lines[0] == "m: first token -, prefill -, decode 34.5 tok/s (medians of 6 attempts; wall clock)"
    assert lines[1].startswith("m: throughput fell") and lines[2].startswith("other: ")


def test_replies_cut_at_max_response_tokens_are_diagnosed_as_such() -> None:
    runs = [attempt("budget_exceeded", repetition=i, turns=10, truncated_replies=6) for i in range(3)]
    verdict, text = wire_diagnosis(runs) or ("", "")
    assert verdict == "replies truncated" and "raise max_response_tokens" in text
    [diagnosis] = ceiling_diagnoses(runs)
    assert diagnosis.verdict == "replies truncated" and "18 of 30 turns" in diagnosis.text


def test_time_overruns_are_diagnosed_as_time_not_turns_or_tokens() -> None:
    runs = [attempt("budget_exceeded", repetition=i, turns=4, limit=Limit.TIME) for i in range(3)]
    [diagnosis] = ceiling_diagnoses(runs)
    assert diagnosis.verdict == "time limit" and "budget.seconds" in diagnosis.text
    assert "turns=x2" not in diagnosis.text
    turn_limited = [attempt("budget_exceeded", repetition=i, turns=10, truncated_replies=1) for i in range(3)]
    assert wire_diagnosis(turn_limited) is None


def test_summary_and_card_show_serving_and_a_throughput_drop(pytester: pytest.Pytester) -> None:
    """Decode at 40 tokens/s for the first attempts, then 15: the run says throughput fell."""
    write_tiny_canary(pytester.path / "canaries" / "tiny", tier="lite", turns=6)
    solution = [("calc.py", FILES["solution/calc.py"])]
    # Each attempt makes 5 requests: attempts 1-3 at 40 tok/s, 4-6 at 15.
    with ScriptedServer("solve", edits=solution, decode_tps=lambda n: 40.0 if n < 15 else 15.0) as server:
        result = pytester.runpytest(
            "--agent-model=openai:scripted",
            f"--agent-host={server.url}",
            "--repeat=6",
            "--agent-json=r.json",
            "--agent-cards=cards",
            "-p",
            "no:randomly",
        )
    result.stdout.fnmatch_lines(
        [
            "serving openai:scripted: first token *s, prefill * tok/s, decode * tok/s "
            "(medians of 6 attempts; server timings)",
            "serving openai:scripted: throughput fell: decode 15.0 tok/s over the last 3 attempts "
            "against 40.0*",
        ]
    )
    card = next(Path(pytester.path / "cards").glob("*.md")).read_text()
    assert "## Serving" in card and "throughput fell" in card


def test_ollama_durations_give_the_rates() -> None:
    """Ollama's /api/chat reports prompt_eval_count/prompt_eval_duration and eval_count/eval_duration
    in nanoseconds (docs/api.md, "Response" of a non-streamed chat)."""
    from pytest_agentloop.backends.ollama import parse_ollama_chat

    reply = parse_ollama_chat(
        {
            "message": {"role": "assistant", "content": "hi"},
            "done_reason": "stop",
            "prompt_eval_count": 600,
            "prompt_eval_duration": 500_000_000,
            "eval_count": 30,
            "eval_duration": 1_500_000_000,
        }
    )
    reply.latency_s = 2.25
    turn = Serving().add(reply, 30)
    assert (turn.ttft_s, turn.prefill_tps, turn.decode_tps) == (0.75, 1200.0, 20.0)
    assert reply.model_s == pytest.approx(2.0)
