"""From `backend:model` to a live Backend (and its ManagedHost): one factory per runtime, extensible.

Factories take the spec, the host URL (None: the runtime's default) and the backend options from
the configuration (`context` is the context length where the harness sets it: embedded n_ctx,
Ollama num_ctx), so adding a runtime is one `register_backend` call (e.g. from a conftest hook).
Runtime modules are imported inside their factories: the embedded one pulls in xllamacpp, which a
user of Ollama never needs. `--agent-host` is accepted with or without the trailing `/v1`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pytest_agentloop.backends.base import Backend, BackendError, ModelSpec
from pytest_agentloop.backends.lifecycle import ManagedHost

BackendFactory = Callable[[ModelSpec, "str | None", Mapping[str, Any]], Backend]
HostFactory = Callable[["str | None", Mapping[str, Any]], ManagedHost]

HTTP_OPTIONS = ("api_key", "retries", "backoff_s", "extra_body", "max_tokens_field")


def _http_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAIBackend keyword arguments a user may set in the configuration."""
    return {key: options[key] for key in HTTP_OPTIONS if key in options}


def _openai(spec: ModelSpec, host: str | None, options: Mapping[str, Any]) -> Backend:
    from pytest_agentloop.backends.openai import OpenAIBackend, default_openai_base_url

    return OpenAIBackend(spec, host or default_openai_base_url(), **_http_options(options))


def _embedded(spec: ModelSpec, host: str | None, options: Mapping[str, Any]) -> Backend:
    from pytest_agentloop.backends.embedded import DEFAULT_N_CTX, EmbeddedBackend

    if host is not None:
        raise BackendError(
            f"{spec.raw} runs in this process and takes no --agent-host; "
            "for a llama-server you started yourself use llamacpp:MODEL --agent-host URL"
        )
    n_ctx = int(options.get("context") or DEFAULT_N_CTX)
    return EmbeddedBackend(
        spec,
        n_ctx=n_ctx,
        threads=options.get("threads"),
        parallel=int(options.get("parallel") or 1),
        shared_dir=options.get("shared_dir"),
    )


def _ollama(spec: ModelSpec, host: str | None, options: Mapping[str, Any]) -> Backend:
    from pytest_agentloop.backends.ollama import DEFAULT_URL, OllamaBackend

    # Ollama's native API takes neither a key nor max_tokens (its cap is options.num_predict).
    http = {k: v for k, v in _http_options(options).items() if k not in ("api_key", "max_tokens_field")}
    return OllamaBackend(
        spec,
        host or DEFAULT_URL,
        num_ctx=options.get("context"),
        keep_alive=options.get("keep_alive"),
        **http,
    )


def _lmstudio(spec: ModelSpec, host: str | None, options: Mapping[str, Any]) -> Backend:
    from pytest_agentloop.backends.lmstudio import DEFAULT_URL, LMStudioBackend
    from pytest_agentloop.backends.openai import v1_url

    return LMStudioBackend(spec, v1_url(host or DEFAULT_URL), **_http_options(options))


def _llamacpp(spec: ModelSpec, host: str | None, options: Mapping[str, Any]) -> Backend:
    from pytest_agentloop.backends.llamacpp import DEFAULT_URL, LlamaCppBackend
    from pytest_agentloop.backends.openai import v1_url

    return LlamaCppBackend(spec, v1_url(host or DEFAULT_URL), **_http_options(options))


def _vllm(spec: ModelSpec, host: str | None, options: Mapping[str, Any]) -> Backend:
    from pytest_agentloop.backends.openai import v1_url
    from pytest_agentloop.backends.vllm import DEFAULT_URL, VLLMBackend

    return VLLMBackend(spec, v1_url(host or DEFAULT_URL), **_http_options(options))


def _ollama_host(host: str | None, options: Mapping[str, Any]) -> ManagedHost:
    from pytest_agentloop.backends.ollama import DEFAULT_URL, OllamaHost

    return OllamaHost(host or DEFAULT_URL)


def _lmstudio_host(host: str | None, options: Mapping[str, Any]) -> ManagedHost:
    from pytest_agentloop.backends.lmstudio import DEFAULT_URL, LMStudioHost

    return LMStudioHost(host or DEFAULT_URL, api_key=options.get("api_key"))


def _llamacpp_host(host: str | None, options: Mapping[str, Any]) -> ManagedHost:
    from pytest_agentloop.backends.llamacpp import DEFAULT_URL, LlamaCppHost

    return LlamaCppHost(host or DEFAULT_URL)


def _vllm_host(host: str | None, options: Mapping[str, Any]) -> ManagedHost:
    from pytest_agentloop.backends.vllm import DEFAULT_GPU_MEMORY_UTILIZATION, DEFAULT_URL, VLLMHost

    fraction = float(options.get("gpu_memory_utilization", DEFAULT_GPU_MEMORY_UTILIZATION))
    return VLLMHost(host or DEFAULT_URL, gpu_memory_utilization=fraction, api_key=options.get("api_key"))


_FACTORIES: dict[str, BackendFactory] = {
    "openai": _openai,
    "embedded": _embedded,
    "ollama": _ollama,
    "lmstudio": _lmstudio,
    "llamacpp": _llamacpp,
    "vllm": _vllm,
}
_HOSTS: dict[str, HostFactory] = {
    "ollama": _ollama_host,
    "lmstudio": _lmstudio_host,
    "llamacpp": _llamacpp_host,
    "vllm": _vllm_host,
}


def register_backend(name: str, factory: BackendFactory, host_factory: HostFactory | None = None) -> None:
    """Add or replace the factories for `name:` specs (the hook for plugins and conftest.py)."""
    _FACTORIES[name] = factory
    if host_factory is not None:
        _HOSTS[name] = host_factory


def known_backends() -> list[str]:
    return sorted(_FACTORIES)


def unknown_backend(spec: ModelSpec) -> BackendError:
    """The one message for a spec whose backend nothing knows (checked up front and on use)."""
    return BackendError(
        f"unknown backend {spec.backend!r} in --agent-model {spec.raw}; known backends: "
        f"{', '.join(known_backends())} (and the pseudo-models reference, null). "
        "Write BACKEND:MODEL, e.g. ollama:qwen3:30b"
    )


def make_backend(spec: ModelSpec, host: str | None, options: Mapping[str, Any]) -> Backend:
    """The Backend for `spec`; an unknown backend name is a usage error naming the known ones."""
    factory = _FACTORIES.get(spec.backend)
    if factory is None:
        raise unknown_backend(spec)
    return factory(spec, host, options)


def make_host(spec: ModelSpec, host: str | None, options: Mapping[str, Any]) -> ManagedHost | None:
    """The lifecycle side of `spec`'s runtime; None where the harness cannot manage residency
    (OpenAI's cloud, the embedded server that lives and dies with its backend)."""
    if spec.backend not in _FACTORIES:
        raise unknown_backend(spec)
    factory = _HOSTS.get(spec.backend)
    return factory(host, options) if factory is not None else None
