"""A conftest.py that teaches pytest-agentloop a runtime it does not know: `tinyserve:MODEL`.

Copy it into your project as `conftest.py` (beside your canaries) and adapt `TinyServeBackend`.
"tinyserve" stands for any in-house server with its own JSON API, here:

    POST {host}/generate  {"model", "messages", "tools", "max_tokens", "temperature"}
    ->   {"text": "...", "calls": [{"name": "...", "arguments": {...}}],
          "prompt_tokens": 12, "completion_tokens": 3}

Run it with `pytest canaries/ --agent-model=tinyserve:my-model --agent-host=http://127.0.0.1:9000`.
The agent loop, grading and reports are the plugin's; only the wire format is yours.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import pytest

from pytest_agentloop.backends.base import (
    Backend,
    BackendError,
    ChatRequest,
    ChatResponse,
    InfraError,
    ModelSpec,
    RawToolCall,
)
from pytest_agentloop.records import Usage


class TinyServeBackend:
    """The Backend protocol (chat, fingerprint, close) over tinyserve's /generate."""

    def __init__(self, spec: ModelSpec, host: str) -> None:
        self.spec = spec
        self.host = host.rstrip("/")

    def chat(self, request: ChatRequest) -> ChatResponse:
        body = {
            "model": self.spec.model,
            "messages": request.messages,
            "tools": request.tools,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        post = urllib.request.Request(
            f"{self.host}/generate", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        start = time.monotonic()
        try:
            with urllib.request.urlopen(post, timeout=request.timeout_s) as response:
                reply = json.load(response)
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
            # A broken runtime is never the model's fault: InfraError is retried and not scored.
            raise InfraError(f"tinyserve at {self.host}: {exc}") from None
        return ChatResponse(
            content=reply.get("text", ""),
            tool_calls=[
                RawToolCall(id=f"tiny_{i}", name=call["name"], arguments=call.get("arguments", {}))
                for i, call in enumerate(reply.get("calls", []))
            ],
            finish_reason="tool_calls" if reply.get("calls") else "stop",
            usage=Usage(
                prompt_tokens=reply.get("prompt_tokens", 0),
                completion_tokens=reply.get("completion_tokens", 0),
            ),
            latency_s=time.monotonic() - start,
        )

    def fingerprint(self) -> dict[str, Any]:
        return {"runtime": "tinyserve", "host": self.host, "model": self.spec.model}

    def close(self) -> None:
        """Nothing held: every request opens its own connection."""


def pytest_agentloop_make_backend(
    spec: ModelSpec, host: str | None, options: Mapping[str, Any], config: pytest.Config
) -> Backend | None:
    """Build a backend for `tinyserve:` specs; leave every other spec to the plugin (return None)."""
    if spec.backend != "tinyserve":
        return None
    if host is None:
        raise BackendError(f"{spec.raw} needs the server's URL: add --agent-host=http://HOST:PORT")
    return TinyServeBackend(spec, host)
