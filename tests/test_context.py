"""One context from the lease to every request, and silent truncation caught (issue 12, points 1-2).

Ollama cannot run here: tests/support/ollama_emulator.py is a loopback server that follows its docs
and source, including the two quirks that corrupt verdicts: a chat with another (or no) `num_ctx`
reloads the model at that context, and a prompt longer than the context is cut without an error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_agentloop.agent.loop import LoopAgent
from pytest_agentloop.analysis.diagnosis import ceiling_diagnoses
from pytest_agentloop.attempt import run_attempt
from pytest_agentloop.backends.base import ChatRequest, ModelSpec
from pytest_agentloop.backends.ollama import OllamaBackend, OllamaHost
from pytest_agentloop.canary import load_canary
from pytest_agentloop.hosts import HostManager
from pytest_agentloop.records import Attempt, Transcript, Turn, Usage
from pytest_agentloop.truncation import mark_truncation, truncated_turns
from tests._runs import run, tiny_suite
from tests.support.ollama_emulator import OllamaEmulator, OllamaModel
from tests.support.scripted_server import BEHAVIOURS
from tests.support.tiny_canary import write_tiny_canary

pytest_plugins = ["pytester"]

SMALL = OllamaModel("qwen3:0.6b", size=400 * 2**20, layers=28, kv_heads=8, head_dim=128)
FIX = [("calc.py", "def add(a, b):\n    return a + b\n")]


@pytest.fixture
def ollama() -> Iterator[OllamaEmulator]:
    with OllamaEmulator([SMALL], edits=FIX) as server:
        yield server


def turn(index: int, chars: int, tokens: int, reasoning: str | None = None) -> Turn:
    return Turn(
        index=index,
        request_messages=2 + index,
        request_chars=chars,
        usage=Usage(prompt_tokens=tokens),
        reasoning=reasoning,
    )


def test_growing_prompts_are_not_flagged_and_a_plateau_is() -> None:
    grown = [turn(0, 4000, 1100), turn(1, 6000, 1650), turn(2, 9000, 2400)]
    assert truncated_turns(grown) == []
    cut = [turn(0, 4000, 1100), turn(1, 12000, 3000), turn(2, 20000, 3050), turn(3, 24000, 2990)]
    assert truncated_turns(cut) == [2, 3]
    transcript = Transcript(turns=cut)
    assert mark_truncation(transcript) is True
    assert [t.context_truncated for t in transcript.turns] == [False, False, True, True]


def test_dropped_thinking_and_unreported_counts_are_not_truncation() -> None:
    """Templates may drop earlier thinking (Qwen3's does); a server without counts says nothing."""
    thinking = [turn(0, 3000, 800, reasoning="x" * 5000), turn(1, 8300, 900)]
    assert truncated_turns(thinking) == []
    assert mark_truncation(Transcript(turns=[turn(0, 3000, 0), turn(1, 9000, 0)])) is None


def test_a_chat_without_num_ctx_reloads_at_the_default_context(ollama: OllamaEmulator) -> None:
    """server/sched.go: a request whose num_ctx differs from the loaded runner's (none: the server's
    default 4096) reloads the model. This is the trap the adapter must never walk into."""
    OllamaHost(ollama.url).load(SMALL.name, 8192)
    bare = OllamaBackend(ModelSpec.parse(f"ollama:{SMALL.name}"), ollama.url)
    bare.chat(ChatRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=8))
    assert ollama.loads == [(SMALL.name, 8192), (SMALL.name, 4096)]


def test_a_model_loaded_at_another_context_is_reloaded_at_the_leased_one(
    ollama: OllamaEmulator, tmp_path: Path
) -> None:
    """/api/ps context_length: a model someone loaded at 4096 (`ollama run`, a chat without num_ctx)
    is not reused for an 8192 lease, since every chat at 8192 would reload it outside the guard."""
    OllamaBackend(ModelSpec.parse(f"ollama:{SMALL.name}"), ollama.url).chat(
        ChatRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=8)
    )
    with HostManager(OllamaHost(ollama.url, poll_s=0.01), root=tmp_path).lease(SMALL.name, 8192) as lease:
        assert not lease.reused and ollama.loaded == {SMALL.name: 8192}
    assert ollama.loads == [(SMALL.name, 4096), (SMALL.name, 8192)]


def test_the_leased_context_is_what_every_chat_runs_at(ollama: OllamaEmulator, tmp_path: Path) -> None:
    """docs/api.md: options.num_ctx on each /api/chat; /api/ps context_length shows the loaded one."""
    manager = HostManager(OllamaHost(ollama.url), root=tmp_path)
    backend = OllamaBackend(ModelSpec.parse(f"ollama:{SMALL.name}"), ollama.url, num_ctx=8192)
    canary = load_canary(write_tiny_canary(tmp_path / "tiny"))
    with manager.lease(SMALL.name, 8192):
        attempt = run_attempt(canary, LoopAgent(backend), model=backend.spec.raw, parent=tmp_path)
    assert attempt.outcome.value == "passed"
    assert ollama.loads == [(SMALL.name, 8192)]  # loaded once, by the lease: no chat reloaded it
    assert {b["options"]["num_ctx"] for b in ollama.seen("POST", "/api/chat")} == {8192}
    assert attempt.context_truncated is False


def test_a_prompt_cut_to_the_context_is_flagged_and_diagnosed_as_context(
    ollama: OllamaEmulator, tmp_path: Path
) -> None:
    """server/prompt.go drops the oldest messages to fit num_ctx without an error; the reply's
    prompt_eval_count shows it. The diagnosis must say "raise the context", never "capability"."""
    ollama.behaviour = BEHAVIOURS["loop_one_call"]  # reads one file forever: the history only grows
    backend = OllamaBackend(ModelSpec.parse(f"ollama:{SMALL.name}"), ollama.url, num_ctx=1024)
    canary = load_canary(write_tiny_canary(tmp_path / "tiny", turns=12))
    attempt = run_attempt(canary, LoopAgent(backend), model=backend.spec.raw, parent=tmp_path)
    assert ollama.truncated, "the emulator never had to cut: the test lost its premise"
    assert attempt.context_truncated is True
    assert attempt.transcript is not None
    assert any(t.context_truncated for t in attempt.transcript.turns)
    runs = [attempt.model_copy(update={"repetition": r}) for r in (1, 2, 3)]
    (diagnosis,) = ceiling_diagnoses(runs)
    assert diagnosis.verdict == "context truncated"
    assert "raise the context" in diagnosis.text and "capability ceiling" not in diagnosis.text


def test_a_run_on_ollama_records_the_effective_context(
    pytester: pytest.Pytester, ollama: OllamaEmulator
) -> None:
    """The whole run: lease at [guard] context, chats at the same num_ctx, model_info says so."""
    tiny_suite(pytester.path)
    result = run(
        pytester, f"--agent-model=ollama:{SMALL.name}", f"--agent-host={ollama.url}", "--agent-json=r.json"
    )
    assert result.ret == 0, result.stdout.str()
    attempts = [
        Attempt.from_record(a) for a in json.loads((pytester.path / "r.json").read_text())["attempts"]
    ]
    assert {a.model_info.get("num_ctx") for a in attempts} == {8192}
    assert {a.model_info.get("context") for a in attempts} == {8192}
    assert all(len(a.model_info.get("chat_template_sha256") or "") == 64 for a in attempts)
    assert ollama.loads == [(SMALL.name, 8192)]
    assert {b["options"]["num_ctx"] for b in ollama.seen("POST", "/api/chat")} == {8192}
