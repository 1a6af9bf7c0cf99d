"""From `backend:model` to a live Backend: one factory per runtime, extensible by plugins.

Factories take the spec, the host URL (None: the runtime's default) and the backend options from
the configuration, so adding a runtime is one `register_backend` call (e.g. from a conftest hook).
Runtime modules are imported inside their factories: the embedded one pulls in xllamacpp, which a
user of Ollama never needs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pytest_agentloop.backends.base import Backend, BackendError, ModelSpec

BackendFactory = Callable[[ModelSpec, "str | None", Mapping[str, Any]], Backend]


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
    return EmbeddedBackend(
        spec, n_ctx=int(options.get("n_ctx", DEFAULT_N_CTX)), threads=options.get("threads")
    )


def _http_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAIBackend keyword arguments a user may set in the configuration."""
    known = ("api_key", "retries", "backoff_s", "extra_body")
    return {key: options[key] for key in known if key in options}


_FACTORIES: dict[str, BackendFactory] = {"openai": _openai, "embedded": _embedded}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Add or replace the factory for `name:` specs (the hook for plugins and conftest.py)."""
    _FACTORIES[name] = factory


def known_backends() -> list[str]:
    return sorted(_FACTORIES)


def make_backend(spec: ModelSpec, host: str | None, options: Mapping[str, Any]) -> Backend:
    """The Backend for `spec`; an unknown backend name is a usage error naming the known ones."""
    factory = _FACTORIES.get(spec.backend)
    if factory is None:
        raise BackendError(
            f"unknown backend {spec.backend!r} in --agent-model {spec.raw}; known backends: "
            f"{', '.join(known_backends())}. Write BACKEND:MODEL, e.g. ollama:qwen3:30b"
        )
    return factory(spec, host, options)
