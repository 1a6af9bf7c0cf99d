"""make_backend: names to factories, the unknown-backend error, and the plugin extension point."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from pytest_agentloop.backends import registry
from pytest_agentloop.backends.base import Backend, BackendError, ModelSpec
from pytest_agentloop.backends.lifecycle import ManagedHost
from pytest_agentloop.backends.ollama import OllamaBackend
from pytest_agentloop.backends.openai import OpenAIBackend


def test_unknown_backend_lists_the_known_ones() -> None:
    with pytest.raises(BackendError) as caught:
        registry.make_backend(ModelSpec.parse("olama:qwen3:8b"), None, {})
    message = str(caught.value)
    assert "unknown backend 'olama' in --agent-model olama:qwen3:8b" in message
    assert ", ".join(registry.known_backends()) in message and "embedded" in message


def test_openai_uses_the_host_and_options() -> None:
    backend = registry.make_backend(
        ModelSpec.parse("openai:gpt-4.1-mini"), "http://127.0.0.1:9/v1", {"retries": 5, "other": 1}
    )
    assert isinstance(backend, OpenAIBackend)
    assert (backend.base_url, backend.retries) == ("http://127.0.0.1:9/v1", 5)
    backend.close()


def test_openai_default_host_follows_openai_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    backend = registry.make_backend(ModelSpec.parse("openai:gpt-4.1-mini"), None, {})
    assert isinstance(backend, OpenAIBackend) and backend.base_url == "http://127.0.0.1:9/v1"
    backend.close()


def test_embedded_refuses_a_host() -> None:
    with pytest.raises(BackendError, match="takes no --agent-host"):
        registry.make_backend(ModelSpec.parse("embedded:smollm2-135m"), "http://127.0.0.1:8080", {})


def test_register_backend_adds_a_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_FACTORIES", dict(registry._FACTORIES))

    def factory(spec: ModelSpec, host: str | None, options: Mapping[str, Any]) -> Backend:
        return OpenAIBackend(spec, host or "http://127.0.0.1:9/v1")

    registry.register_backend("mine", factory)
    assert "mine" in registry.known_backends()
    backend = registry.make_backend(ModelSpec.parse("mine:m"), None, {})
    assert isinstance(backend, OpenAIBackend) and backend.spec.model == "m"
    backend.close()


@pytest.mark.parametrize(
    ("raw", "base_url"),
    [
        ("ollama:qwen3:8b", "http://127.0.0.1:9"),
        ("lmstudio:qwen/qwen3-coder-30b", "http://127.0.0.1:9/v1"),
        ("llamacpp:default", "http://127.0.0.1:9/v1"),
        ("vllm:Qwen/Qwen3-8B", "http://127.0.0.1:9/v1"),
    ],
)
@pytest.mark.parametrize("host", ["http://127.0.0.1:9", "http://127.0.0.1:9/v1/"])
def test_runtime_backends_accept_the_host_with_or_without_v1(raw: str, base_url: str, host: str) -> None:
    backend = registry.make_backend(ModelSpec.parse(raw), host, {"retries": 2})
    assert isinstance(backend, OpenAIBackend) and backend.base_url == base_url and backend.retries == 2
    backend.close()


@pytest.mark.parametrize("name", ["ollama", "lmstudio", "llamacpp", "vllm"])
def test_local_runtimes_have_a_managed_host(name: str) -> None:
    host = registry.make_host(ModelSpec.parse(f"{name}:m"), "http://127.0.0.1:9/v1", {})
    assert isinstance(host, ManagedHost) and host.name == f"{name}@http://127.0.0.1:9"


def test_cloud_and_embedded_have_no_managed_host() -> None:
    assert registry.make_host(ModelSpec.parse("openai:gpt-4.1-mini"), None, {}) is None
    assert registry.make_host(ModelSpec.parse("embedded:smollm2-135m"), None, {}) is None
    with pytest.raises(BackendError, match="unknown backend 'nope'"):
        registry.make_host(ModelSpec.parse("nope:m"), None, {})


def test_vllm_host_reserves_the_configured_fraction() -> None:
    host = registry.make_host(ModelSpec.parse("vllm:m"), None, {"gpu_memory_utilization": 0.5})
    assert host is not None and host.reserved_fraction == 0.5 and host.name == "vllm@http://127.0.0.1:8000"


def test_context_option_sets_ollama_num_ctx() -> None:
    backend = registry.make_backend(ModelSpec.parse("ollama:qwen3:8b"), None, {"context": 16384})
    assert isinstance(backend, OllamaBackend) and backend.num_ctx == 16384
    assert backend.base_url == "http://127.0.0.1:11434"
    backend.close()
