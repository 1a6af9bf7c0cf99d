"""The embedded backend with the real SmolLM2-135M GGUF served by xllamacpp on loopback."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped,unused-ignore]
import pytest

from pytest_agentloop.backends.base import BackendError, ChatRequest, ModelSpec
from pytest_agentloop.backends.embedded import EmbeddedBackend, server_threads, usable_cores

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


def test_workers_share_one_server_and_the_last_to_leave_stops_it(tmp_path: Path) -> None:
    """Two workers of a run (the run-shared directory, two slots): one server process, both served at
    once, alive while either is attached, gone after the last one leaves."""
    first = EmbeddedBackend(SPEC, n_ctx=1024, parallel=2, shared_dir=tmp_path)
    second = EmbeddedBackend(SPEC, n_ctx=1024, parallel=2, shared_dir=tmp_path)
    try:
        assert (first.server_pid, first.base_url) == (second.server_pid, second.base_url)
        assert first.server_pid != os.getpid()  # the server lives in its own process
        with ThreadPoolExecutor(2) as pool:
            replies = list(
                pool.map(lambda b: b.chat(say("Say hello.", max_tokens=8, seed=1)), (first, second))
            )
        assert all(reply.content.strip() for reply in replies)
        assert first.fingerprint()["parallel"] == 2
    finally:
        first.close()
    assert httpx.get(f"{second.base_url}/models").status_code == 200  # still serving the other worker
    second.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{second.base_url}/models")
    assert not psutil.pid_exists(first.server_pid)


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [("150000 100000\n", 1), ("max 100000\n", None), ("400000 100000\n", 4), ("garbage", None)],
)
def test_threads_follow_affinity_and_the_cgroup_quota(
    tmp_path: Path, cpu_max: str, expected: int | None
) -> None:
    """cgroup v2 cpu.max: QUOTA PERIOD (or `max`); 1.5 cores of quota is one thread, never two."""
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max)
    affinity = len(os.sched_getaffinity(0))
    assert usable_cores(path) == min(expected or affinity, affinity)


@pytest.mark.parametrize(
    ("cores", "busy", "expected"),
    [(1, 0.0, 1), (2, 0.0, 1), (2, 5.0, 1), (16, 0.3, 15), (16, 4.7, 12), (16, 40.0, 1)],
)
def test_server_threads_leave_the_harness_a_core_and_skip_busy_ones(
    cores: int, busy: float, expected: int
) -> None:
    """llama.cpp's threads spin-wait: one more than the cores really free stalls them all (2 threads
    on 2 shared cores under load decoded ~10x slower than 1), so the count leaves the harness a core
    and does not count cores the load average says are taken."""
    assert server_threads(cores, busy) == expected


def test_the_first_worker_chooses_the_threads_and_later_ones_share_its_server(tmp_path: Path) -> None:
    """Threads are chosen from the load by whoever starts the server and kept in the shared state:
    a worker attaching later uses that server and reports the count it really runs with."""
    first = EmbeddedBackend(SPEC, n_ctx=512, parallel=2, shared_dir=tmp_path)
    try:
        second = EmbeddedBackend(SPEC, n_ctx=512, parallel=2, shared_dir=tmp_path)
        try:
            assert second.server_pid == first.server_pid
            assert second.threads == first.threads == second.fingerprint()["threads"]
            command = " ".join(psutil.Process(first.server_pid).cmdline())
            assert f"--threads {first.threads}" in command
        finally:
            second.close()
    finally:
        first.close()
