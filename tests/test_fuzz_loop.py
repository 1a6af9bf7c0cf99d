"""The full loop under fuzzed replies: no attempt is ever lost.

A real loopback server (tests/support/scripted_server.py) answers every request with a body drawn
from a seeded generator of hostile replies (tests/support/fuzz_bodies.py: HTML error pages, 5xx
and 429, JSON nested past any recursion limit, truncated JSON, wrong types everywhere, huge
integers, lone surrogates, content as parts, calls that half work). Each attempt runs the real
backend, loop, tools, workspace and grading; every one must end in a record with an outcome and a
reason that can be written to a results file.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from pytest_agentloop.agent.loop import LoopAgent
from pytest_agentloop.attempt import run_attempt
from pytest_agentloop.backends.base import ModelSpec
from pytest_agentloop.backends.openai import OpenAIBackend
from pytest_agentloop.canary import load_canary
from pytest_agentloop.records import Attempt, Outcome
from pytest_agentloop.sandbox import SandboxPolicy
from tests.support.fuzz_bodies import fuzz_behaviour
from tests.support.scripted_server import ScriptedServer
from tests.support.tiny_canary import write_tiny_canary

ATTEMPTS = 100
SEED = 16


def fuzz_attempts(count: int, seed: int, tmp_path: Path) -> list[Attempt]:
    """`count` attempts of the tiny canary against one fuzzing server (shared by the benchmark)."""
    canary = load_canary(write_tiny_canary(tmp_path / "canary", turns=4))
    spec = ModelSpec.parse("openai:scripted")
    records = []
    with ScriptedServer("fuzz", fuzz=fuzz_behaviour(seed)) as server:
        backend = OpenAIBackend(spec, server.url, retries=2, backoff_s=0.0)
        try:
            for repetition in range(1, count + 1):
                records.append(
                    run_attempt(
                        canary,
                        LoopAgent(backend),
                        model=spec.raw,
                        repetition=repetition,
                        limits=SandboxPolicy(timeout_s=30),
                        parent=tmp_path,
                    )
                )
        finally:
            backend.close()
    return records


def test_every_fuzzed_attempt_ends_in_a_record_with_an_outcome_and_a_reason(tmp_path: Path) -> None:
    records = fuzz_attempts(ATTEMPTS, SEED, tmp_path)
    assert [a.repetition for a in records] == list(range(1, ATTEMPTS + 1))
    for record in records:
        assert isinstance(record.outcome, Outcome) and record.reason.strip()
        json.dumps(record.to_record(with_transcript=True), ensure_ascii=False).encode("utf-8")
    outcomes = Counter(a.outcome for a in records)
    # The fuzz reaches the model outcomes as well as infra: the loop did run on what it could read.
    assert outcomes[Outcome.INFRA_ERROR] < ATTEMPTS and outcomes[Outcome.NO_TOOL_CALLS] < ATTEMPTS
    assert not any(a.reason.startswith("harness error") for a in records), [
        a.reason for a in records if a.reason.startswith("harness error")
    ]
