"""The one small protocol every runtime sits behind, and the request/response it speaks.

Requests and responses are OpenAI-shaped because every runtime we target speaks that dialect
(Ollama's native /api/chat is translated inside its adapter). Everything a backend returns is
plain data; everything that goes wrong on the wire becomes an `InfraError`, which is never
scored against the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pytest_agentloop.records import Usage


class InfraError(Exception):
    """The runtime or the harness broke (connection refused, timeout, 5xx, a crashed server)."""


class BackendError(Exception):
    """A usage problem the user must fix: unknown backend, unknown model, unreachable host."""


@dataclass(frozen=True)
class ModelSpec:
    """`backend:model` as typed on the command line, e.g. `ollama:qwen3:30b`."""

    backend: str
    model: str
    raw: str

    @classmethod
    def parse(cls, raw: str) -> ModelSpec:
        raw = raw.strip()
        if raw in ("reference", "null"):
            return cls(backend=raw, model=raw, raw=raw)
        backend, sep, model = raw.partition(":")
        if not sep or not backend or not model:
            raise BackendError(
                f"model spec {raw!r} is not BACKEND:MODEL; write e.g. 'ollama:qwen3:30b', "
                "'embedded:smollm2-135m', or one of the pseudo-models 'reference' and 'null'."
            )
        return cls(backend=backend, model=model, raw=raw)

    @property
    def slug(self) -> str:
        """Short, id-safe name used in item ids: `qwen3-coder:30b` -> `qwen3-coder-30b`."""
        tail = self.model.rstrip("/").split("/")[-1]
        tail = re.sub(r"\.gguf$", "", tail, flags=re.IGNORECASE)
        return re.sub(r"[^A-Za-z0-9.]+", "-", tail).strip("-").lower() or self.backend


@dataclass
class RawToolCall:
    """A tool call as the runtime returned it: arguments may be a JSON string or an object."""

    id: str
    name: str
    arguments: str | dict[str, Any]


@dataclass
class ChatRequest:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)  # OpenAI `tools` entries
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int = 1024
    seed: int | None = None
    reasoning: bool | None = None  # None: the runtime's default
    json_schema: dict[str, Any] | None = None  # constrained decoding of the whole reply
    timeout_s: float = 300.0


@dataclass
class ChatResponse:
    content: str = ""
    reasoning: str | None = None
    tool_calls: list[RawToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    latency_s: float = 0.0
    model_s: float | None = None  # time the server says it spent (prefill + decode), when it says


@runtime_checkable
class Backend(Protocol):
    """A model being served somewhere. Implementations live in one module per runtime."""

    spec: ModelSpec

    def chat(self, request: ChatRequest) -> ChatResponse:
        """One completion. Retries transient faults itself, then raises InfraError."""
        ...

    def fingerprint(self) -> dict[str, Any]:
        """What exactly is being evaluated: runtime and version, digest, quantization, context."""
        ...

    def close(self) -> None:
        """Release what the backend holds (connections, an embedded server)."""
        ...
