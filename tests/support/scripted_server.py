"""A real OpenAI-compatible chat server on loopback whose replies follow a script of known truth.

Each behaviour decides its reply from the request it receives (it sees the whole history, so it can
count its own earlier turns), which makes the episode a loop should produce exactly predictable:
`solve` must end finished and pushed, `loop_one_call` must end on the turn budget with every call
after the first redundant, and so on. The server runs in a thread of the test process, so a
pytester subprocess can reach it through `--agent-host`.

Faults are behaviours too: a reply may carry its own `status`, `headers` (e.g. Retry-After), a
`raw` body sent verbatim (HTML error pages, truncated JSON, fuzzed bytes), a `delay_s` before it
is sent (a hung one-slot server), or `usage: None` (a server that reports no usage). With
`decode_tps` the replies carry llama.cpp-style `timings` at that generation rate (a number, or a
function of the request count, to emulate a server that slows down).

Manual run: `python -m tests.support.scripted_server --behaviour solve --port 8089`.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

from pytest_agentloop.loopback import LoopbackServer, send_body

Edits = Sequence[tuple[str, str]]
# {"content", "tool_calls"?, "finish_reason"?, "usage"?, "thinking_tokens"?} or {"status": 500}, plus
# the fault keys "headers", "raw" (bytes or str, sent as is), "delay_s" (seconds before replying).
Reply = dict[str, Any]
Behaviour = Callable[["ScriptedServer", dict[str, Any]], Reply]
Rate = float | Callable[[int], float]

MODEL = "scripted"
HANG_S = 600.0  # a "hung" server's silence; stopping the server ends it at once
OPENAI_MAX_TOKENS_400 = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. "
    "Use 'max_completion_tokens' instead."
)
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


def bash_steps(edits: Edits) -> list[str]:
    """A shell agent's way through a task: write each file with a heredoc, run the tests, submit."""
    writes = [
        f"mkdir -p \"$(dirname {path})\" && cat > {path} <<'AGENTLOOP_EOF'\n{text}AGENTLOOP_EOF"
        for path, text in edits
    ]
    return [*writes, "python -m pytest -q", "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"]


@behaviour("bash_solve")
def _bash_solve(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """mini-swe-agent's protocol (v2): one `bash` tool call per reply, and
    `echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT` as the last one. The agent commits nothing
    itself: its wrapper command commits and pushes."""
    steps, turn = bash_steps(server.edits), own_turns(body)
    reply = native(("bash", {"command": steps[min(turn, len(steps) - 1)]}), turn=turn)
    reply["content"] = "THOUGHT: next step."
    return reply


@behaviour("bash_solve_as_text")
def _bash_solve_as_text(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """The same steps written as `<tool_call>` text, as a small model whose template ignores `tools` does."""
    steps, turn = bash_steps(server.edits), own_turns(body)
    return as_text("bash", {"command": steps[min(turn, len(steps) - 1)]})


@behaviour("bash_forever")
def _bash_forever(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """Lists the files on every turn and never submits: only a turn budget stops it."""
    return native(("bash", {"command": "ls"}), turn=own_turns(body))


@behaviour("whole_file_edit")
def _whole_file_edit(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """aider's `whole` edit format: the file's path on a line, then its whole new content fenced."""
    blocks = [f"{path}\n```\n{text}```" for path, text in server.edits]
    return {"content": "Here is the fix.\n\n" + "\n\n".join(blocks), "finish_reason": "stop"}


@behaviour("flaky")
def _flaky(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """Every second request fails with a 500; the others solve. Retries must absorb the failures."""
    if server.request_count % 2 == 1:
        return {"status": 500}
    return _solve(server, body)


@behaviour("hang")
def _hang(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """A one-slot server stuck on an earlier request: it accepts the connection and never answers."""
    return {"delay_s": HANG_S, **_solve(server, body)}


@behaviour("hang_every_other")
def _hang_every_other(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """Every second request hangs (a slot stuck now and then); the others solve."""
    if server.request_count % 2 == 1:
        return _hang(server, body)
    return _solve(server, body)


@behaviour("rate_limited")
def _rate_limited(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """OpenAI's 429 with `Retry-After` (seconds or an HTTP-date, `server.retry_after`) on the first
    request; the retry after the wait is answered."""
    if server.request_count == 0:
        value = server.retry_after() if callable(server.retry_after) else server.retry_after
        return {"status": 429, "headers": {"Retry-After": value}}
    return _solve(server, body)


@behaviour("content_parts")
def _content_parts(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """`message.content` as a list of text parts (OpenAI, vLLM): the text calls are split across parts."""
    reply = _solve_as_text(server, body)
    text = reply["content"]
    middle = len(text) // 2
    reply["content"] = [{"type": "text", "text": text[:middle]}, {"type": "text", "text": text[middle:]}]
    return reply


@behaviour("no_usage")
def _no_usage(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """A server that reports no `usage` (and no timings): token counts are unknown."""
    return {**_solve(server, body), "usage": None}


@behaviour("truncating")
def _truncating(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """Every reply ends with finish_reason "length" (cut at max_tokens): the first two in the middle
    of a text tool call, the rest still carrying a whole native call."""
    turn = own_turns(body)
    if turn < 2:
        cut = '<tool_call>{"name": "write_file", "arguments": {"path": "calc.py", "con'
        return {"content": cut, "finish_reason": "length"}
    return {**native(solve_steps(server.edits)[min(turn - 2, 4)], turn=turn), "finish_reason": "length"}


@behaviour("wants_max_completion_tokens")
def _wants_max_completion_tokens(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """OpenAI's o-series and newer models: a permanent 400 for `max_tokens`, naming the field to use."""
    if "max_tokens" in body:
        error = {"message": OPENAI_MAX_TOKENS_400, "type": "invalid_request_error", "param": "max_tokens"}
        return {"status": 400, "error": error}
    return _solve(server, body)


@behaviour("refuses_request")
def _refuses_request(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """A permanent 400 for a parameter the server does not take (as OpenAI words it)."""
    error = {"message": "Unrecognized request argument supplied: top_k", "type": "invalid_request_error"}
    return {"status": 400, "error": error}


@behaviour("fuzz")
def _fuzz(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """Whatever `server.fuzz` makes of the request (tests/support/fuzz_bodies.py): any bytes at all."""
    if server.fuzz is None:
        raise ValueError("the fuzz behaviour needs ScriptedServer(fuzz=...)")
    return server.fuzz(server, body)


@behaviour("down")
def _down(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    """Every chat request fails with a 500: a runtime up but broken (an infra error, never the model's)."""
    return {"status": 500}


class ScriptedServer(LoopbackServer):
    """`with ScriptedServer("solve", edits=[...]) as server:` then point a backend at `server.url`."""

    def __init__(
        self,
        behaviour: str = "solve",
        *,
        edits: Edits = (),
        latency_s: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        retry_after: str | Callable[[], str] = "1",  # a callable: computed as the reply is sent
        decode_tps: Rate | None = None,
        fuzz: Behaviour | None = None,
    ) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; use one of: {', '.join(sorted(BEHAVIOURS))}")
        self.behaviour = BEHAVIOURS[behaviour]
        self.edits = list(edits)
        self.latency_s = latency_s
        self.retry_after = retry_after
        self.decode_tps = decode_tps
        self.fuzz = fuzz
        self.stopping = threading.Event()  # ends every hung reply when the server stops
        self.requests: list[dict[str, Any]] = []
        self.request_count = 0  # chat requests so far, including those answered with an error
        self._lock = threading.Lock()
        super().__init__(_handler_for(self), name="scripted-server", host=host, port=port)

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def stop(self) -> None:
        self.stopping.set()
        super().stop()

    def reply(self, body: dict[str, Any]) -> tuple[int, dict[str, Any] | bytes, dict[str, str]]:
        """The HTTP status, body (JSON, or raw bytes) and extra headers for one chat request."""
        with self._lock:
            self.requests.append(body)
            scripted = self.behaviour(self, body)
            count = self.request_count
            self.request_count += 1
        delay = self.latency_s + float(scripted.get("delay_s", 0.0))
        if delay:
            self.stopping.wait(delay)
        status, headers = int(scripted.get("status", 200)), dict(scripted.get("headers") or {})
        if "raw" in scripted:
            raw = scripted["raw"]
            data = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogatepass")
            return status, data, headers
        if status != 200:
            error = scripted.get("error") or {
                "message": f"scripted failure on request {count}",
                "type": "server_error",
            }
            return status, {"error": error}, headers
        return 200, _completion(body, scripted, count, self.latency_s, self._rate(count)), headers

    def _rate(self, count: int) -> float | None:
        return self.decode_tps(count) if callable(self.decode_tps) else self.decode_tps


def _completion(
    body: dict[str, Any], scripted: Reply, number: int, latency_s: float, decode_tps: float | None
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": scripted.get("content", "")}
    if scripted.get("tool_calls"):
        message["tool_calls"] = scripted["tool_calls"]
    reply = {
        "id": f"chatcmpl-{number}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", MODEL),
        "choices": [{"index": 0, "message": message, "finish_reason": scripted.get("finish_reason", "stop")}],
    }
    if "usage" in scripted and scripted["usage"] is None:
        return reply  # a server that reports neither usage nor timings
    usage = dict(scripted.get("usage") or _usage(body, message))
    usage["completion_tokens"] += scripted.get("thinking_tokens", 0)  # a model that thinks at length
    reply["usage"] = {**usage, "total_tokens": usage["prompt_tokens"] + usage["completion_tokens"]}
    prompt_ms, predicted_ms = latency_s * 250.0, latency_s * 750.0
    if decode_tps:  # llama.cpp's own report: prefill ten times the decode rate
        prompt_ms = usage["prompt_tokens"] / (10 * decode_tps) * 1000
        predicted_ms = usage["completion_tokens"] / decode_tps * 1000
    reply["timings"] = {
        "prompt_n": usage["prompt_tokens"],
        "prompt_ms": prompt_ms,
        "predicted_n": usage["completion_tokens"],
        "predicted_ms": predicted_ms,
    }
    return reply


def _usage(body: dict[str, Any], message: dict[str, Any]) -> dict[str, int]:
    """About four characters a token, as for English and code with common tokenizers."""
    prompt_chars = sum(len(m.get("content") or "") for m in body.get("messages", []))
    prompt_chars += len(json.dumps(body.get("tools", [])))
    return {"prompt_tokens": prompt_chars // 4 + 1, "completion_tokens": len(json.dumps(message)) // 4 + 1}


def stream_chunks(completion: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A `chat.completion` cut into the `chat.completion.chunk` deltas a streaming runtime sends."""
    choice = completion["choices"][0]
    message = choice["message"]
    head = {key: completion[key] for key in ("id", "created", "model")} | {"object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return head | {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    chunks = [chunk({"role": "assistant", "content": ""})]
    content = message.get("content") or ""
    chunks += [chunk({"content": content[i : i + 7]}) for i in range(0, len(content), 7)]
    for index, call in enumerate(message.get("tool_calls") or []):
        arguments = call["function"]["arguments"]
        first = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": call["function"]["name"], "arguments": ""},
        }
        chunks.append(chunk({"tool_calls": [first]}))
        chunks += [
            chunk({"tool_calls": [{"index": index, "function": {"arguments": arguments[i : i + 5]}}]})
            for i in range(0, len(arguments), 5)
        ]
    chunks.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        chunks.append(head | {"choices": [], "usage": completion["usage"]})
    return chunks


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
            status, payload, headers = server.reply(body)
            if body.get("stream") and status == 200 and isinstance(payload, dict):
                self._stream(payload, bool((body.get("stream_options") or {}).get("include_usage")))
            else:
                self._send(status, payload, headers)

        def _stream(self, completion: dict[str, Any], include_usage: bool) -> None:
            """The reply as OpenAI's SSE chunks: role, content in small pieces, each tool call's
            arguments split across deltas, finish_reason, then usage (when asked) and [DONE]."""
            try:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                for chunk in stream_chunks(completion, include_usage):
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True

        def _send(
            self, status: int, payload: dict[str, Any] | bytes, headers: dict[str, str] | None = None
        ) -> None:
            # A client that gave up (the time-budget tests time out on purpose) is let go, as a real
            # runtime drops the reply.
            if isinstance(payload, bytes):
                send_body(self, status, payload, "text/html", headers)
            else:
                send_body(self, status, json.dumps(payload).encode(), "application/json", headers)

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
