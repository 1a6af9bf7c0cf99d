"""The loopback HTTP plumbing the runtime emulators share: JSON routes, a thread, every request kept.

An emulator subclasses `RuntimeServer` and answers `handle(method, path, query, body)` with a status
and a JSON body; the state it keeps (loaded models, contexts, sleeping) is what the tests inspect.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from pytest_agentloop.loopback import LoopbackServer, send_body

Answer = tuple[int, Any]


class RuntimeServer(LoopbackServer):
    """`with Emulator(...) as server:` then point the adapter at `server.url`."""

    name = "runtime"

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, body)
        self.lock = threading.RLock()
        super().__init__(_handler_for(self), name=self.name, host=address)

    @property
    def url(self) -> str:
        return self.root

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        raise NotImplementedError

    def seen(self, method: str, path: str) -> list[Any]:
        """Bodies of the requests to one route, oldest first."""
        return [body for m, p, body in self.requests if m == method and p == path]


def _handler_for(server: RuntimeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw.strip() else None
            except json.JSONDecodeError:
                self._send(400, {"error": "body is not JSON"})
                return
            parts = urlsplit(self.path)
            with server.lock:
                server.requests.append((self.command, parts.path, body))
            self._send(*server.handle(self.command, parts.path, parse_qs(parts.query), body))

        do_GET = do_POST = do_DELETE = _serve

        def _send(self, status: int, payload: Any) -> None:
            text = isinstance(payload, str)  # a Prometheus exposition; everything else is JSON
            data = b"" if payload is None else (payload if text else json.dumps(payload)).encode()
            send_body(self, status, data, "text/plain; version=0.0.4" if text else "application/json")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: test output is for the tests."""

    return Handler


def prompt_tokens(messages: list[dict[str, Any]], tools: list[Any] | None = None) -> int:
    """About four characters a token plus a few template tokens per message, as common tokenizers do."""
    total = len(json.dumps(tools)) // 4 if tools else 0
    for message in messages:
        text = str(message.get("content") or "") + json.dumps(message.get("tool_calls") or "")
        total += 4 + len(text) // 4
    return total
