"""The LM Studio adapter against a real loopback server replaying recorded exchanges.

The exchanges follow lmstudio-ai/docs: 3_openai-compat/tools.mdx (chat and tool calls) and
1_developer/2_rest/{list,load,unload,endpoints}.md (REST api/v1 and the legacy api/v0); LM Studio
itself cannot run on the CI machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from recorded.replay import ReplayServer, Reply

from pytest_agentloop.backends.base import BackendError, ChatRequest, InfraError, ModelSpec
from pytest_agentloop.backends.lifecycle import LoadedModel, ManagedHost
from pytest_agentloop.backends.lmstudio import LMStudioBackend, LMStudioHost
from pytest_agentloop.memory import MetadataError
from pytest_agentloop.records import Attempt
from tests._runs import run, tiny_suite
from tests.support.lmstudio_emulator import LMStudioEmulator

pytest_plugins = ["pytester"]

SPEC = ModelSpec.parse("lmstudio:qwen/qwen3-coder-30b")


@pytest.fixture
def server() -> Iterator[ReplayServer]:
    with ReplayServer() as replay:
        yield replay


def test_chat_parses_native_calls_and_leaves_fallback_calls_in_content(server: ReplayServer) -> None:
    """tools.mdx: native calls have string arguments; other models answer [TOOL_REQUEST] in content."""
    server.load("lmstudio/chat")
    backend = LMStudioBackend(SPEC, f"{server.url}/v1")
    backend.check()
    native = backend.chat(ChatRequest(messages=[], timeout_s=5))
    assert [(c.id, c.name, c.arguments) for c in native.tool_calls] == [
        ("365174485", "read_file", '{"path":"README.md"}')
    ]
    fallback = backend.chat(ChatRequest(messages=[], timeout_s=5))
    assert not fallback.tool_calls and fallback.content.startswith("[TOOL_REQUEST]")
    assert backend.fingerprint()["runtime"] == "lmstudio"


def test_check_names_the_models_lmstudio_has(server: ReplayServer) -> None:
    """OpenAI-compat /v1/models lists every downloaded model when JIT loading is on."""
    server.load("lmstudio/chat")
    with pytest.raises(BackendError, match=r"'qwen3' not found .* it has: qwen/qwen3-coder-30b"):
        LMStudioBackend(ModelSpec.parse("lmstudio:qwen3"), f"{server.url}/v1").check()


def test_host_lists_unloads_by_instance_id_and_loads(server: ReplayServer) -> None:
    """list.md loaded_instances[].id, unload.md {"instance_id"}, load.md {"model", "context_length"}."""
    server.load("lmstudio/host_v1")
    host = LMStudioHost(server.url, poll_s=0.01)
    assert isinstance(host, ManagedHost) and host.name == f"lmstudio@{server.url}"
    assert host.loaded_models() == [LoadedModel("qwen/qwen3-coder-30b", 18556686208, None, 32768)]
    host.unload("qwen/qwen3-coder-30b")
    assert [r.body for r in server.seen("POST", "/api/v1/models/unload")] == [
        {"instance_id": "qwen/qwen3-coder-30b"}
    ]
    assert host.available_models() == ["qwen/qwen3-coder-30b"]  # the embedding model is not offered
    host.load("qwen/qwen3-coder-30b", 16384)
    assert server.seen("POST", "/api/v1/models/load")[0].body == {
        "model": "qwen/qwen3-coder-30b",
        "context_length": 16384,
        "echo_load_config": True,
    }


def test_an_unload_that_never_lands_is_reported(server: ReplayServer) -> None:
    """lmstudio-bug-tracker#517: the instance stays listed; the wait is bounded and says what to do."""
    listing = server.load("lmstudio/host_v1").routes[("GET", "/api/v1/models")][0]
    server.routes[("GET", "/api/v1/models")] = [listing]
    with pytest.raises(
        InfraError, match=r"still lists qwen/qwen3-coder-30b as loaded 0.1s .* `lms unload --all`"
    ):
        LMStudioHost(server.url, unload_timeout_s=0.1, poll_s=0.02).unload("qwen/qwen3-coder-30b")


def test_legacy_v0_listing_is_used_when_v1_is_missing(server: ReplayServer) -> None:
    """endpoints.md: LM Studio 0.3.x has only /api/v0/models with `state`."""
    server.load("lmstudio/host_v0")
    host = LMStudioHost(server.url)
    assert host.available_models() == ["qwen2.5-7b-instruct", "meta-llama-3.1-8b-instruct"]
    assert host.loaded_models() == [LoadedModel("qwen2.5-7b-instruct")]
    assert host.version() == "lmstudio (REST api/v0)"


def test_metadata_says_what_lmstudio_reports_and_carries_the_size(server: ReplayServer) -> None:
    """list.md reports architecture, quantization, max context and size_bytes, not layers and heads:
    the guard then sizes the model under a stated assumption instead of refusing it."""
    server.load("lmstudio/host_v1")
    with pytest.raises(MetadataError) as caught:
        LMStudioHost(server.url).model_metadata("qwen/qwen3-coder-30b")
    assert str(caught.value) == (
        "lmstudio reports no layer shape for qwen/qwen3-coder-30b "
        "(arch qwen3moe, quant Q4_K_M, max context 262144)"
    )
    assert caught.value.weights_bytes == 18556686208


def test_a_refused_token_is_infra_on_the_host(server: ReplayServer) -> None:
    """LM Studio with authentication on answers 401 without the token."""
    server.add("GET", "/api/v1/models", Reply(401, {"error": "Unauthorized"}))
    with pytest.raises(InfraError, match="401"):
        LMStudioHost(server.url).available_models()


MODEL = "qwen/qwen3-8b"
FIX = [("calc.py", "def add(a, b):\n    return a + b\n")]


def _run(pytester: pytest.Pytester, lmstudio: LMStudioEmulator) -> list[Attempt]:
    tiny_suite(pytester.path)
    result = run(
        pytester, f"--agent-model=lmstudio:{MODEL}", f"--agent-host={lmstudio.url}", "--agent-json=r.json"
    )
    assert result.ret == 0, result.stdout.str()
    guard = [line for line in result.stdout.lines if line.startswith("guard: ")]
    assert len(guard) <= 1  # a caveat is said once in the summary, not per attempt
    lmstudio.summary_guard = guard  # type: ignore[attr-defined]
    records = json.loads((pytester.path / "r.json").read_text())["attempts"]
    return [Attempt.from_record(record) for record in records]


def test_default_settings_run_guarded_under_a_stated_assumption(pytester: pytest.Pytester) -> None:
    """list.md gives size_bytes but no layer shape: with the guard on (the default) the run sizes the
    model as weights + an assumed KV, says so, loads it through the REST API (no JIT load, no TTL)."""
    with LMStudioEmulator({MODEL: 5 * 2**30}, edits=FIX) as lmstudio:
        attempts = _run(pytester, lmstudio)
    assert lmstudio.loads == [("rest", MODEL, 8192)]
    assert {(a.model_info["quantization"], a.model_info["architecture"]) for a in attempts} == {
        ("Q4_K_M", "qwen3")
    }
    (guard,) = {a.model_info["guard"] for a in attempts}
    assert (
        guard.startswith(f"fits: {MODEL} at context 8192: needs ")
        and "[assumed KV of 0.5 MiB per token" in guard
    )
    assert lmstudio.summary_guard == [f"guard: lmstudio:{MODEL}: {guard}"]  # type: ignore[attr-defined]


def test_a_server_that_reports_no_size_runs_unsized_and_says_so(pytester: pytest.Pytester) -> None:
    """endpoints.md: LM Studio 0.3.x has only /api/v0/models (no size): the model truly cannot be sized."""
    with LMStudioEmulator({MODEL: 5 * 2**30}, api_v1=False, edits=FIX) as lmstudio:
        attempts = _run(pytester, lmstudio)
    (guard,) = {a.model_info["guard"] for a in attempts}
    assert guard.startswith(f"unsized: lmstudio reports no layer shape for {MODEL} (arch qwen3, quant Q4_K_M")
    assert lmstudio.loads == [("jit", MODEL, 4096)]  # no REST load before 0.4: JIT, once, explicitly


def test_a_model_unloaded_while_held_is_leased_again_not_jit_loaded(pytester: pytest.Pytester) -> None:
    """ttl-and-auto-evict.md: a chat naming a model that is not loaded JIT-loads it at its default
    context with an idle TTL. When the held model disappears (TTL, eviction, a person), the next
    attempt leases it again through the guard instead of letting its first chat JIT-load it."""
    with LMStudioEmulator({MODEL: 5 * 2**30}, edits=FIX, expire_after_chats=3) as lmstudio:
        _run(pytester, lmstudio)
    assert len(lmstudio.loads) >= 2
    assert {kind for kind, _, _ in lmstudio.loads} == {"rest"}
