"""A threaded HTTP server on loopback, served from a daemon thread, and its one way to send a reply.

The metering proxy (agent/metering.py) runs one per attempt; the tests' runtime emulators and scripted
model servers reuse it, so starting, addressing and stopping a loopback server is written once.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

POLL_S = 0.05  # how often serve_forever looks for a shutdown: bounds how long stop() waits
_log = logging.getLogger("agentloop")


class _Server(ThreadingHTTPServer):
    """A client that drops its connection mid-reply (an agent killed at a budget, a cancelled stream, a
    test's client timing out on purpose) is routine: logged at debug, not printed as a traceback into
    the test's output; anything else is logged as an error of the named server."""

    daemon_threads = True  # a hung request never holds the process open

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], name: str) -> None:
        super().__init__(address, handler)
        self.name = name

    def handle_error(self, request: Any, client_address: Any) -> None:
        gone = isinstance(sys.exc_info()[1], ConnectionError)
        _log.log(logging.DEBUG if gone else logging.ERROR, "%s: %s", self.name, client_address, exc_info=True)


class LoopbackServer:
    """`with LoopbackServer(Handler, name="x") as server:` serves on `server.root` until the block ends.

    Servers with more to start or stop (the proxy's upstream client) subclass it and extend
    `start`/`stop`; the `with` protocol stays this one."""

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], *, name: str, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._httpd = _Server((host, port), handler, name)
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
