"""A real loopback HTTP server that replays recorded exchanges, for the runtime adapters' tests.

Routes are (METHOD, path-without-query) -> replies served in order; the last reply repeats, so a
recording of "still loaded" answers every poll. Every request is kept for the tests to inspect.
Recordings live next to this file as JSON: {"doc": ..., "exchanges": [{"method", "path",
"status", "response"}]}, where `doc` names the documentation the exchanges follow.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_agentloop.loopback import LoopbackServer, send_body

HERE = Path(__file__).parent


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON, str -> text
    delay_s: float = 0.0


@dataclass
class Seen:
    method: str
    path: str  # with the query string
    body: Any
    headers: dict[str, str]


@dataclass
class ReplayServer:
    routes: dict[tuple[str, str], list[Reply]] = field(default_factory=lambda: defaultdict(list))
    requests: list[Seen] = field(default_factory=list)

    def add(self, method: str, path: str, *replies: Reply) -> ReplayServer:
        self.routes[(method, path)].extend(replies)
        return self

    def load(self, name: str) -> ReplayServer:
        """Add the exchanges of tests/recorded/<name>.json, in order."""
        recording = json.loads((HERE / f"{name}.json").read_text())
        for exchange in recording["exchanges"]:
            reply = Reply(exchange.get("status", 200), exchange.get("response"))
            self.add(exchange["method"], exchange["path"], reply)
        return self

    def seen(self, method: str, path: str) -> list[Seen]:
        return [r for r in self.requests if r.method == method and urlsplit(r.path).path == path]

    def __enter__(self) -> ReplayServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw.strip() else None
                server.requests.append(Seen(self.command, self.path, body, dict(self.headers)))
                queue = server.routes.get((self.command, urlsplit(self.path).path))
                reply = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else Reply(404, "no route")
                time.sleep(reply.delay_s)
                is_text = isinstance(reply.body, str)
                payload = (reply.body if is_text else json.dumps(reply.body)).encode()
                send_body(self, reply.status, payload, "text/plain" if is_text else "application/json")

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the tests read `requests`, not stderr."""

        self._server = LoopbackServer(Handler, name="replay-server")
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()

    @property
    def url(self) -> str:
        return self._server.root
