"""The vLLM adapter against a real loopback server replaying recorded exchanges.

The exchanges follow vllm-project/vllm docs/features/tool_calling.md, reasoning_outputs.md,
structured_outputs.md and sleep_mode.md; vLLM itself needs a GPU and cannot run on the CI machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from recorded.replay import ReplayServer, Reply

from pytest_agentloop.backends.base import BackendError, ChatRequest, ModelSpec
from pytest_agentloop.backends.lifecycle import LoadedModel, ManagedHost
from pytest_agentloop.backends.vllm import VLLMBackend, VLLMHost
from pytest_agentloop.config import HostTable
from pytest_agentloop.hostmemory import memory_reader
from pytest_agentloop.hosts import HostManager, ModelWontFit
from pytest_agentloop.memory import GiB
from tests.support.vllm_emulator import VLLMEmulator

SPEC = ModelSpec.parse("vllm:Qwen/Qwen3-8B")
SCHEMA = {"type": "object"}


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer() as replay:
        yield replay


def test_qwen3_tool_call_with_blank_content_and_reasoning(server: ReplayServer) -> None:
    """tool_calling.md (hermes parser) + reasoning_outputs.md: content "\\n\\n" next to tool_calls."""
    server.load("vllm/chat")
    backend = VLLMBackend(SPEC, f"{server.url}/v1")
    backend.check()
    reply = backend.chat(ChatRequest(messages=[], reasoning=False, json_schema=SCHEMA, timeout_s=5))
    assert reply.content == "\n\n" and reply.reasoning == "The user wants the README."
    assert [(c.id, c.name) for c in reply.tool_calls] == [("chatcmpl-tool-4d1c", "read_file")]
    assert (reply.usage.prompt_tokens, reply.usage.cached_tokens) == (290, 0)
    sent = server.seen("POST", "/v1/chat/completions")[0].body
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert sent["structured_outputs"] == {"json": SCHEMA} and "guided_json" not in sent
    assert backend.fingerprint()["runtime"] == "vllm 0.12.0"


def test_servers_before_0_12_get_guided_json(server: ReplayServer) -> None:
    """structured_outputs.md: guided_json was the field until it was removed in v0.12.0."""
    server.add("GET", "/version", Reply(body={"version": "0.11.2"}))
    server.load("vllm/chat")
    VLLMBackend(SPEC, f"{server.url}/v1").chat(ChatRequest(messages=[], json_schema=SCHEMA, timeout_s=5))
    assert server.seen("POST", "/v1/chat/completions")[0].body["guided_json"] == SCHEMA


def test_sleep_and_wake_are_unload_and_load(server: ReplayServer) -> None:
    """sleep_mode.md: POST /sleep?level=1, GET /is_sleeping, POST /wake_up."""
    server.load("vllm/sleep")
    host = VLLMHost(server.url, gpu_memory_utilization=0.85, poll_s=0.01)
    assert isinstance(host, ManagedHost) and host.reserved_fraction == 0.85
    assert host.loaded_models() == [LoadedModel("Qwen/Qwen3-8B", context=32768)]
    host.unload("Qwen/Qwen3-8B")
    assert [r.path for r in server.seen("POST", "/sleep")] == ["/sleep?level=1"]
    assert host.loaded_models() == []
    host.load("Qwen/Qwen3-8B", 32768)
    assert len(server.seen("POST", "/wake_up")) == 1
    assert host.version() == "0.11.0"


def test_without_sleep_mode_one_model_per_server_is_reported(server: ReplayServer) -> None:
    """sleep_mode.md: /is_sleeping exists only with VLLM_SERVER_DEV_MODE=1 and --enable-sleep-mode."""
    server.load("vllm/chat")
    host = VLLMHost(server.url)
    assert host.loaded_models() == [LoadedModel("Qwen/Qwen3-8B", context=32768)]
    with pytest.raises(BackendError, match="has no sleep mode, so Qwen/Qwen3-8B cannot be unloaded"):
        host.unload("Qwen/Qwen3-8B")
    with pytest.raises(BackendError, match=r"serves Qwen/Qwen3-8B, not Qwen/Qwen3-32B: .*vllm serve"):
        host.load("Qwen/Qwen3-32B", 8192)


def test_a_sleeping_server_can_be_woken_within_its_own_reservation(tmp_path: Path) -> None:
    """sleep_mode.md: a sleeping server gives its GPU memory back and takes gpu_memory_utilization of
    the device again on /wake_up (vLLM's own start-up check: that fraction must be free). The guard
    applies that rule, not fraction + margin + reserve, which never fits (0.9 x 1.1 + 2 GiB)."""
    with VLLMEmulator("Qwen/Qwen3-8B") as vllm:
        host = VLLMHost(vllm.url, gpu_memory_utilization=0.9, poll_s=0.01)
        box = ("gpu-a", HostTable(dcgm_exporter=f"{vllm.url}/dcgm"))
        manager = HostManager(host, root=tmp_path, memory=memory_reader(box, vllm.url, host.loaded_models))
        with manager.lease("Qwen/Qwen3-8B", 8192) as lease:
            assert vllm.wakes == 1 and not vllm.sleeping
            assert lease.guard is not None and lease.guard.startswith(
                "fits: Qwen/Qwen3-8B at context 8192: needs 72.0 GiB"
            )


def test_a_wake_that_would_not_fit_is_refused_before_it_ooms(tmp_path: Path) -> None:
    """vllm#47654: wake_up OOMs when another tenant holds the memory; the guard refuses first."""
    with VLLMEmulator("Qwen/Qwen3-8B", other_tenants_bytes=10 * GiB) as vllm:
        host = VLLMHost(vllm.url, gpu_memory_utilization=0.9, poll_s=0.01)
        box = ("gpu-a", HostTable(dcgm_exporter=f"{vllm.url}/dcgm"))
        manager = HostManager(host, root=tmp_path, memory=memory_reader(box, vllm.url, host.loaded_models))
        with (
            pytest.raises(
                ModelWontFit, match=r"won't fit: Qwen/Qwen3-8B .* needs 72.0 GiB \(reserved 72.0 GiB\)"
            ),
            manager.lease("Qwen/Qwen3-8B", 8192),
        ):
            pass
        assert vllm.wakes == 0
