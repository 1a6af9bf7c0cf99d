"""The llama.cpp adapter: recorded router-mode exchanges, and a REAL llama-server in another process.

Recordings follow ggml-org/llama.cpp tools/server/README.md (router mode /models, /models/load,
/models/unload; /v1/chat/completions timings and reasoning_content). xllamacpp disables router
mode, so the router is tested on recordings; single-model mode runs for real: xllamacpp serving
SmolLM2-135M in a subprocess on 127.0.0.1.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from recorded.replay import ReplayServer

from pytest_agentloop.backends.base import BackendError, ChatRequest, InfraError, ModelSpec
from pytest_agentloop.backends.embedded import smollm2_path
from pytest_agentloop.backends.lifecycle import LoadedModel, ManagedHost
from pytest_agentloop.backends.llamacpp import LlamaCppBackend, LlamaCppHost
from pytest_agentloop.hosts import HostManager
from pytest_agentloop.memory import MetadataError

SERVE = textwrap.dedent(
    """
    import sys, xllamacpp as x
    p = x.CommonParams(); p.model.path = sys.argv[1]; p.model_alias = {"smollm2"}; p.n_ctx = 1024
    p.n_parallel = 1; p.cpuparams.n_threads = 1; p.cpuparams_batch.n_threads = 1
    p.hostnames = ["127.0.0.1"]; p.port = 0; p.use_jinja = True; p.verbosity = 0
    server = x.Server(p)
    print(server.listening_address, flush=True)
    sys.stdin.read()  # serve until the test closes our stdin
    """
)


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer() as server:
        yield server


@contextmanager
def _serving(script: str) -> Iterator[str]:
    """Run a real llama-server (xllamacpp) script in a child process; yield its root URL, then stop it."""
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(smollm2_path())],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    try:
        url = child.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), f"server did not start: {url!r}"
        yield url
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    """A real llama-server (xllamacpp) in a child process; yields its root URL."""
    with _serving(SERVE) as url:
        yield url


def test_real_server_chat_with_reasoning_switch(llama_server: str) -> None:
    backend = LlamaCppBackend(ModelSpec.parse("llamacpp:default"), f"{llama_server}/v1")
    backend.check()  # single-model mode answers to any name, so `default` passes
    reply = backend.chat(
        ChatRequest(
            messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=6,
            temperature=0.0,
            reasoning=False,
            timeout_s=60,
        )
    )
    assert reply.content and 0 < reply.usage.completion_tokens <= 6
    assert reply.model_s is not None and reply.model_s > 0
    fingerprint = backend.fingerprint()
    assert fingerprint["props"]["n_ctx"] == 1024 and fingerprint["props"]["model_alias"] == "smollm2"
    assert len(fingerprint["props"]["chat_template_sha256"]) == 64


def test_real_server_as_a_managed_host(llama_server: str) -> None:
    host = LlamaCppHost(llama_server)
    assert isinstance(host, ManagedHost) and host.name == f"llamacpp@{llama_server}"
    assert host.available_models() == ["smollm2"]
    [loaded] = host.loaded_models()
    assert loaded.name == "smollm2" and loaded.context == 1024 and loaded.size_bytes
    meta = host.model_metadata("smollm2")
    assert (meta.name, meta.architecture, meta.layers, meta.quantization) == ("smollm2", "llama", 30, "Q4_1")
    assert host.version().startswith("llama.cpp ")
    host.load("smollm2", 1024)  # already served: nothing to do
    with pytest.raises(BackendError, match="single-model mode and cannot unload smollm2: start it in router"):
        host.unload("smollm2")
    with pytest.raises(BackendError, match="cannot load qwen3"):
        host.load("qwen3", 1024)


def test_recorded_chat_with_empty_id_reasoning_and_timings(replay: ReplayServer) -> None:
    """README /v1/chat/completions; empty tool-call id as in llama.cpp#12279."""
    replay.load("llamacpp/chat")
    backend = LlamaCppBackend(ModelSpec.parse("llamacpp:qwen2.5-coder-7b"), f"{replay.url}/v1")
    reply = backend.chat(ChatRequest(messages=[], reasoning=True, timeout_s=5))
    assert [(c.id, c.name) for c in reply.tool_calls] == [("", "read_file")] and reply.content == ""
    assert reply.reasoning == "Need the file." and reply.usage.cached_tokens == 120
    assert reply.model_s == pytest.approx(0.4905)
    sent = replay.seen("POST", "/v1/chat/completions")[0].body
    assert (
        sent["chat_template_kwargs"] == {"enable_thinking": True} and sent["reasoning_format"] == "deepseek"
    )


def test_router_mode_loads_and_unloads_with_status_polling(replay: ReplayServer) -> None:
    """README router mode: POST /models/load|unload {"model"}, GET /models status.value."""
    replay.load("llamacpp/router")
    host = LlamaCppHost(replay.url, poll_s=0.01)
    assert host.available_models() == ["qwen3-8b", "gemma-3-4b"]
    assert host.loaded_models() == [LoadedModel("gemma-3-4b")]
    host.load("qwen3-8b", 8192)
    host.unload("gemma-3-4b")
    assert [r.body for r in replay.seen("POST", "/models/load")] == [{"model": "qwen3-8b"}]
    assert [r.body for r in replay.seen("POST", "/models/unload")] == [{"model": "gemma-3-4b"}]
    with pytest.raises(MetadataError, match=r"qwen3-8b-Q4_K_M\.gguf.* is not readable here"):
        host.model_metadata("qwen3-8b")


def test_router_load_failure_is_reported_with_exit_code(replay: ReplayServer) -> None:
    """README router mode: a child that dies reports status.failed and exit_code (llama.cpp#23668)."""
    replay.load("llamacpp/router_load_fails")
    with pytest.raises(
        InfraError, match=r"failed to load qwen3-32b \(exit code 1, args llama-server -c 32768\)"
    ):
        LlamaCppHost(replay.url, poll_s=0.01).load("qwen3-32b", 32768)


@pytest.fixture(scope="module")
def unaliased_server() -> Iterator[str]:
    """A real llama-server started as most users do, `-m FILE` without --alias."""
    with _serving(SERVE.replace('p.model_alias = {"smollm2"}; ', "")) as url:
        yield url


def test_single_model_is_matched_by_its_file_stem_or_named_in_one_line(
    unaliased_server: str, tmp_path: Path
) -> None:
    """tools/server/README.md: without --alias, /v1/models names the one model by its file path; a user
    types `llamacpp:smollm2-135m-instruct` (as `llamacpp:qwen3-8b` for Qwen3-8B-Q4_K_M.gguf)."""
    host = LlamaCppHost(unaliased_server)
    (served,) = host.available_models()
    assert served.endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    assert host.resolve("smollm2-135m-instruct") == served == host.resolve("default")
    with pytest.raises(BackendError) as caught:
        host.resolve("qwen3-8b")
    assert str(caught.value) == (
        f"llama-server at {unaliased_server} serves {served}, not qwen3-8b: use "
        f"--agent-model=llamacpp:{served} or start it with --alias qwen3-8b"
    )
    with HostManager(host, root=tmp_path).lease("smollm2-135m-instruct", 1024) as lease:
        assert lease.model == served and lease.reused and lease.guard is None
