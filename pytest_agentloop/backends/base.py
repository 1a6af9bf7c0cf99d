"""The one small protocol every runtime sits behind, and the request/response it speaks.

Requests and responses are OpenAI-shaped because every runtime we target speaks that dialect
(Ollama's native /api/chat is translated inside its adapter). Everything a backend returns is
plain data; everything that goes wrong on the wire becomes an `InfraError`, which is never
scored against the model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pytest_agentloop.records import Usage

# No chat reply nests this deep; a body that does is refused before anything recurses into it.
MAX_JSON_DEPTH = 64
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class InfraError(Exception):
    """The runtime or the harness broke (connection refused, timeout, 5xx, a crashed server).

    `tries` keeps why each try failed (every retry keeps its reason), `lost_s` the wall time they
    took, and `cut_off` says the attempt's time budget ended the request rather than the server.
    """

    def __init__(
        self, message: str, *, tries: Sequence[str] = (), lost_s: float = 0.0, cut_off: bool = False
    ) -> None:
        super().__init__(message)
        self.tries = list(tries)
        self.lost_s = lost_s
        self.cut_off = cut_off


class JsonTooDeep(ValueError):
    """Decoded JSON nested deeper than MAX_JSON_DEPTH."""


def clean_json(value: Any, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Decoded JSON made safe to keep: lone surrogates (which no file or socket can encode) become
    U+FFFD, and nesting past `max_depth` raises JsonTooDeep. Iterative, so any depth is safe to walk."""
    holder = [value]
    stack: list[tuple[list[Any] | dict[Any, Any], int]] = [(holder, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise JsonTooDeep(f"nested deeper than {max_depth} levels")
        if isinstance(node, dict):
            for key in [k for k in node if isinstance(k, str) and _LONE_SURROGATE.search(k)]:
                node[_LONE_SURROGATE.sub("\ufffd", key)] = node.pop(key)
        for key, item in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(item, str) and _LONE_SURROGATE.search(item):
                node[key] = _LONE_SURROGATE.sub("\ufffd", item)
            elif isinstance(item, list | dict):
                stack.append((item, depth + 1))
    return holder[0]


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
    timeout_s: float = 300.0  # the cap on one try
    # time.monotonic() by which the request and all its retries must be over (the attempt's budget)
    deadline: float | None = None


@dataclass(frozen=True)
class ServingTiming:
    """What the server says it spent on one reply (llama.cpp `timings`, Ollama's durations)."""

    prefill_tokens: int | None = None  # prompt tokens evaluated (a cached prefix is not)
    prefill_s: float | None = None
    decode_tokens: int | None = None
    decode_s: float | None = None


@dataclass
class ChatResponse:
    content: str = ""
    reasoning: str | None = None
    tool_calls: list[RawToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None  # None: the server did not report it (never a 0 nobody counted)
    latency_s: float = 0.0  # the answered try's own time, without failed tries before it
    model_s: float | None = None  # time the server says it spent (prefill + decode), when it says
    timing: ServingTiming | None = None
    retries: list[str] = field(default_factory=list)  # why each failed try before this reply failed
    infra_s: float = 0.0  # wall time those failed tries (and the waits between them) took


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
