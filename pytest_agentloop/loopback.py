"""A threaded HTTP server on loopback, served from a daemon thread, and its one way to send a reply.

The metering proxy (agent/metering.py) runs one per attempt; the tests' runtime emulators and scripted
model servers reuse it, so starting, addressing and stopping a loopback server is written once.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

POLL_S = 0.05  # how often serve_forever looks for a shutdown: bounds how long stop() waits


class LoopbackServer:
    """`with LoopbackServer(Handler, name="x") as server:` serves on `server.root` until the block ends.

    Servers with more to start or stop (the proxy's upstream client) subclass it and extend
    `start`/`stop`; the `with` protocol stays this one."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], *, name: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True  # a hung request never holds the process open
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": POLL_S}, name=name, daemon=True
        )

    @property
    def root(self) -> str:
        """`http://host:port`, with the port the system picked when asked for 0."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port; a request still running is left to its daemon thread."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def send_body(
    handler: BaseHTTPRequestHandler,
    status: int,
    data: bytes,
    content_type: str = "application/json",
    headers: Mapping[str, str] | None = None,
) -> None:
    """One whole reply with its length. A client that already hung up (it timed out on purpose, or
    was killed) is let go with the connection closed: a traceback would land in whatever runs next."""
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True
