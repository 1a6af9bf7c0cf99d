"""A real OpenAI-compatible chat server on loopback whose replies follow a script of known truth.

Each behaviour decides its reply from the request it receives (it sees the whole history, so it can
count its own earlier turns), which makes the episode a loop should produce exactly predictable:
`solve` must end finished and pushed, `loop_one_call` must end on the turn budget with every call
after the first redundant, and so on. The server runs in a thread of the test process, so a
pytester subprocess can reach it through `--agent-host`.

Manual run: `python -m tests.support.scripted_server --behaviour solve --port 8089`.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

Edits = Sequence[tuple[str, str]]
Reply = dict[str, Any]  # {"content", "tool_calls"?, "finish_reason"?, "usage"?} or {"status": 500}
Behaviour = Callable[["ScriptedServer", dict[str, Any]], Reply]

MODEL = "scripted"
BEHAVIOURS: dict[str, Behaviour] = {}


def behaviour(name: str) -> Callable[[Behaviour], Behaviour]:
    def register(func: Behaviour) -> Behaviour:
        BEHAVIOURS[name] = func
        return func

    return register


def own_turns(body: dict[str, Any]) -> int:
    """How many replies this conversation already holds: the script's position."""
    return sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")


def native(*calls: tuple[str, dict[str, Any]], turn: int) -> Reply:
    return {
        "content": "",
        "tool_calls": [
            {
                "id": f"srv_{turn}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(args)},
            }
            for i, (name, args) in enumerate(calls)
        ],
        "finish_reason": "tool_calls",
    }


def as_text(name: str, args: dict[str, Any]) -> Reply:
    call = json.dumps({"name": name, "arguments": args})
    return {"content": f"I'll use {name}.\n<tool_call>{call}</tool_call>", "finish_reason": "stop"}


def solve_steps(edits: Edits) -> list[tuple[str, dict[str, Any]]]:
    return [
        *(("write_file", {"path": path, "content": content}) for path, content in edits),
        ("run_tests", {}),
        ("commit", {"message": "Do the task"}),
        ("push", {}),
        ("finish", {"summary": "Done and pushed."}),
    ]


@behaviour("solve")
def _solve(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    steps = solve_steps(server.edits)
    turn = own_turns(body)
    return native(steps[min(turn, len(steps) - 1)], turn=turn)


@behaviour("solve_as_text")
def _solve_as_text(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    steps = solve_steps(server.edits)
    return as_text(*steps[min(own_turns(body), len(steps) - 1)])


@behaviour("text_only_template")
def _text_only_template(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """A chat template that does not render `tools` (SmolLM2's): prose when the runtime is sent tool
    schemas (native mode), working calls as text when the schemas are in the prompt instead."""
    if body.get("tools"):
        return _never_calls(server, body)
    return _solve_as_text(server, body)


@behaviour("loop_one_call")
def _loop_one_call(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    return native(
        ("read_file", {"path": server.edits[0][0] if server.edits else "README.md"}), turn=own_turns(body)
    )


@behaviour("never_calls")
def _never_calls(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    return {"content": "I would start by reading the code, then make the change.", "finish_reason": "stop"}


@behaviour("broken_json")
def _broken_json(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    reply = native(("read_file", {}), turn=own_turns(body))
    reply["tool_calls"][0]["function"]["arguments"] = '{"path": "README.md",'
    return reply


@behaviour("calls_as_text")
def _calls_as_text(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    if own_turns(body) == 0:
        return as_text("list_files", {})
    return as_text("finish", {"summary": "Looked around."})


@behaviour("quits_at_once")
def _quits_at_once(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    return native(("finish", {"summary": "All done."}), turn=own_turns(body))


@behaviour("escalates")
def _escalates(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    return native(("escalate", {"reason": "The spec contradicts itself."}), turn=own_turns(body))


@behaviour("burns_tokens")
def _burns_tokens(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    reply = native(("list_files", {}), turn=own_turns(body))
    reply["usage"] = {"prompt_tokens": 900_000, "completion_tokens": 100_000}
    return reply


@behaviour("flaky")
def _flaky(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """Every second request fails with a 500; the others solve. Retries must absorb the failures."""
    if server.request_count % 2 == 1:
        return {"status": 500}
    return _solve(server, body)


@behaviour("down")
def _down(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """Every chat request fails with a 500: a runtime up but broken (an infra error, never the model's)."""
    return {"status": 500}


class ScriptedServer:
    """`with ScriptedServer("solve", edits=[...]) as server:` then point a backend at `server.url`."""

    def __init__(
        self,
        behaviour: str = "solve",
        *,
        edits: Edits = (),
        latency_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; use one of: {', '.join(sorted(BEHAVIOURS))}")
        self.behaviour = BEHAVIOURS[behaviour]
        self.edits = list(edits)
        self.latency_s = latency_s
        self.requests: list[dict[str, Any]] = []
        self.request_count = 0  # chat requests so far, including those answered with an error
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="scripted-server",
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> ScriptedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ScriptedServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """The HTTP status and JSON body for one chat request."""
        with self._lock:
            self.requests.append(body)
            scripted = self.behaviour(self, body)
            count = self.request_count
            self.request_count += 1
        if self.latency_s:
            time.sleep(self.latency_s)
        status = scripted.get("status", 200)
        if status != 200:
            return status, {
                "error": {"message": f"scripted failure on request {count}", "type": "server_error"}
            }
        return 200, _completion(body, scripted, count, self.latency_s)


def _completion(body: dict[str, Any], scripted: Reply, number: int, latency_s: float) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": scripted.get("content", "")}
    if scripted.get("tool_calls"):
        message["tool_calls"] = scripted["tool_calls"]
    usage = scripted.get("usage") or _usage(body, message)
    return {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", MODEL),
        "choices": [{"index": 0, "message": message, "finish_reason": scripted.get("finish_reason", "stop")}],
        "usage": {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]},
        "timings": {
            "prompt_n": usage["prompt_tokens"],
            "prompt_ms": latency_s * 250.0,
            "predicted_n": usage["completion_tokens"],
            "predicted_ms": latency_s * 750.0,
        },
    }


def _usage(body: dict[str, Any], message: dict[str, Any]) -> dict[str, int]:
    """About four characters a token, as for English and code with common tokenizers."""
    prompt_chars = sum(len(m.get("content") or "") for m in body.get("messages", []))
    prompt_chars += len(json.dumps(body.get("tools", [])))
    return {"prompt_tokens": prompt_chars // 4 + 1, "completion_tokens": len(json.dumps(message)) // 4 + 1}


def _handler_for(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall

        def do_GET(self) -> None:
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self._send(
                    200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "tests"}]}
                )
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                self._send(400, {"error": {"message": "request body is not JSON"}})
                return
            self._send(*server.reply(body))

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (the time-budget tests time out on purpose). A real runtime
                # drops the reply; a traceback here would print into whichever test runs next.
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: test output is for the tests."""

    return Handler


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a scripted OpenAI-compatible model on loopback.")
    parser.add_argument("--behaviour", default="solve", choices=sorted(BEHAVIOURS))
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every reply")
    parser.add_argument("--edit", nargs=2, action="append", default=[], metavar=("PATH", "CONTENT"))
    options = parser.parse_args(argv)
    server = ScriptedServer(
        options.behaviour, edits=options.edit, latency_s=options.latency, port=options.port
    )
    print(f"serving {options.behaviour!r} at {server.url} (Ctrl-C stops)", flush=True)
    with server:
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
