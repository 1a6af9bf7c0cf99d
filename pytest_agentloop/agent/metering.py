"""A loopback OpenAI-compatible proxy that meters an external agent's model traffic.

An external agent talks to its model over HTTP, so the harness stands in the middle: one proxy per
attempt, on 127.0.0.1 and an ephemeral port, forwarding to the real model server. Every chat
request and reply through it becomes a transcript turn, counted with the built-in loop's own
parsers (`parse_chat_completion`, `parse_reply`), so turns, tokens, tool calls, malformed,
redundant and text-recovered calls mean the same for an external agent as for the loop. The turn
and token budgets are enforced here: past them the agent gets an HTTP 403 whose message says so
(not 429 or 5xx, which OpenAI clients and litellm retry with backoff, nor 400, which mini-swe-agent
retries ten times: a 403 is final for all of them), and the attempt ends `budget_exceeded`.
Streaming replies (SSE) are relayed chunk by chunk and assembled for counting. Each reply is counted
before the agent has all of it, so its next request always meets an up-to-date meter.

The tools a reply may call are those the request declared (`tools`); a call the model wrote into
the text instead is recovered and counted as text-recovered, as in the loop. An agent that declares
no tools acts some other way (aider's edit blocks): its tool-call counters stay null, unmeasured.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, ClassVar

import httpx
from pydantic import BaseModel, ConfigDict, model_validator

from pytest_agentloop.agent.base import AttemptBudget, Counters, estimate_usage
from pytest_agentloop.agent.calls import ParsedCalls, parse_reply
from pytest_agentloop.backends.openai import describe_transport_error, excerpt, parse_chat_completion
from pytest_agentloop.cells import CellSettings
from pytest_agentloop.loopback import LoopbackServer, send_body
from pytest_agentloop.records import Limit, Transcript, Turn

UPSTREAM_TIMEOUT_S = 600.0  # one reply of a slow local model; the attempt's time budget bounds the rest
_CHAT = "/chat/completions"
_DONE = b"data: [DONE]"
_HOP_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding", "accept-encoding"})


class DeclaredTool(BaseModel):
    """A tool as the agent's request declared it: its required parameters must be there."""

    model_config = ConfigDict(extra="allow")
    required: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _has_required(cls, data: Any) -> Any:
        missing = [name for name in cls.required if not isinstance(data, dict) or name not in data]
        if missing:
            raise ValueError(f"missing required parameter(s): {', '.join(missing)}")
        return data


def declared_tools(tools: Any) -> dict[str, type[BaseModel]]:
    """The request's `tools` entries as validators for `parse_reply`."""
    declared: dict[str, type[BaseModel]] = {}
    for tool in tools if isinstance(tools, list) else []:
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            continue
        params = function.get("parameters")
        listed = params.get("required") if isinstance(params, dict) else None
        required = tuple(name for name in listed or [] if isinstance(name, str))
        declared[function["name"]] = type(function["name"], (DeclaredTool,), {"required": required})
    return declared


@dataclass
class Meter(Counters):
    """What went through the proxy: the turns, the counters, and whether a budget ran out."""

    budget: AttemptBudget
    workspace: Path | None = None
    turns: list[Turn] = field(default_factory=list)
    requests: int = 0  # chat requests admitted (each one is a turn once its reply is counted)
    refused: int = 0
    saw_tools: bool = False  # some request declared tools, so the tool-call counters mean something
    exceeded: Limit | None = None
    upstream_errors: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set)
    _tree: tuple[tuple[str, int, int], ...] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self) -> str | None:
        """Take a turn for a new request, or the refusal message when a budget is spent."""
        with self._lock:
            if self.exceeded is None and self.requests >= self.budget.turns:
                self.exceeded = Limit.TURNS
            if self.exceeded is not None:
                self.refused += 1
                return self.refusal()
            self.requests += 1
            self._note_changes()
            return None

    def refusal(self) -> str:
        if self.exceeded is Limit.TOKENS:
            return (
                f"agentloop: the token budget of {self.budget.tokens:,} is spent "
                f"({self.prompt_tokens + self.completion_tokens:,} used); this attempt is over, stop now"
            )
        return (
            f"agentloop: the turn budget of {self.budget.turns} requests is spent; "
            "this attempt is over, stop now"
        )

    def count(self, body: dict[str, Any], reply: dict[str, Any], latency_s: float) -> None:
        """One reply, counted with the loop's own parsers; its calls checked for repeats."""
        response = parse_chat_completion(reply)
        response.latency_s = latency_s
        sent = body.get("messages")
        messages = [m for m in sent if isinstance(m, dict)] if isinstance(sent, list) else []
        turn_chars = sum(len(str(m.get("content") or "")) for m in messages)
        with self._lock:
            index = len(self.turns)
            # A reply without `usage`: the budget runs on the loop's estimate, the record says unknown.
            usage = response.usage or estimate_usage(turn_chars, response)
            tools = declared_tools(body.get("tools"))
            self.saw_tools = self.saw_tools or bool(tools)
            parsed = parse_reply(response, tools, f"call_{index}") if tools else ParsedCalls()
            keys = [f"{call.name}:{json.dumps(call.arguments, sort_keys=True)}" for call in parsed.calls]
            redundant = sum(key in self._seen for key in keys)
            self._seen.update(keys)
            self.turns.append(
                Turn(
                    index=index,
                    request_messages=len(messages),
                    request_chars=sum(
                        len(str(m.get("content") or "")) for m in messages if isinstance(m, dict)
                    ),
                    content=response.content,
                    reasoning=response.reasoning,
                    calls=parsed.calls,
                    malformed=parsed.malformed,
                    usage=usage,
                    usage_estimated=response.usage is None,
                    latency_s=latency_s,
                    finish_reason=response.finish_reason,
                    native_tool_calls=len(response.tool_calls),
                )
            )
            self.count_reply(response, parsed, usage, redundant)
            if self.exceeded is None and self.prompt_tokens + self.completion_tokens > self.budget.tokens:
                self.exceeded = Limit.TOKENS

    def failed(self, message: str) -> None:
        """A request the model server did not answer: recorded, and its turn given back."""
        with self._lock:
            self.upstream_errors.append(message)
            self.requests -= 1

    def transcript(self, spec: str) -> Transcript:
        with self._lock:
            return Transcript(spec=spec, turns=list(self.turns))

    def _note_changes(self) -> None:
        """A call repeated since the work tree last changed is redundant, as in the Toolbox."""
        if self.workspace is None:
            return
        tree = _tree_state(self.workspace)
        if tree != self._tree:  # which call changed it is not known here, so nothing counts as seen
            self._seen.clear()
            self._tree = tree


def _tree_state(root: Path) -> tuple[tuple[str, int, int], ...]:
    """Size and mtime of every file in the work tree and of git's refs: cheap, and moves on any edit."""
    state = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in ("objects", "__pycache__", ".pytest_cache")]
        for name in files:
            try:
                stat = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            state.append((os.path.join(folder, name), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(state))


def apply_cell(body: dict[str, Any], settings: CellSettings) -> dict[str, Any]:
    """The cell's sampling settings where it sets them, and its cap on each reply's length."""
    body = dict(body)
    for name in ("temperature", "top_p", "seed"):
        value = getattr(settings, name)
        if value is not None:
            body[name] = value
    for name in ("max_tokens", "max_completion_tokens"):
        if isinstance(body.get(name), int):
            body[name] = min(body[name], settings.max_response_tokens)
    if not isinstance(body.get("max_tokens"), int) and not isinstance(body.get("max_completion_tokens"), int):
        body["max_tokens"] = settings.max_response_tokens
    return body


class StreamAssembler:
    """The deltas of an SSE chat stream put back together into one `chat.completion` body."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.timings: dict[str, Any] | None = None
        self._pending = b""

    def feed(self, chunk: bytes) -> None:
        self._pending += chunk
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            self._line(line.strip())

    def _line(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        data = line[5:].strip()
        if not data or data == b"[DONE]":
            return
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        if isinstance(event.get("usage"), dict):
            self.usage = event["usage"]
        if isinstance(event.get("timings"), dict):
            self.timings = event["timings"]
        for choice in event.get("choices") or []:
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                self._choice(choice)

    def _choice(self, choice: dict[str, Any]) -> None:
        delta = choice.get("delta") or {}
        self.content.append(delta.get("content") or "")
        self.reasoning.append(delta.get("reasoning_content") or delta.get("reasoning") or "")
        for call in delta.get("tool_calls") or []:
            slot = self.calls.setdefault(int(call.get("index", 0)), {"id": "", "name": "", "arguments": ""})
            function = call.get("function") or {}
            slot["id"] = call.get("id") or slot["id"]
            slot["name"] += function.get("name") or ""
            slot["arguments"] += function.get("arguments") or ""
        self.finish_reason = choice.get("finish_reason") or self.finish_reason

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content)}
        if any(self.reasoning):
            message["reasoning_content"] = "".join(self.reasoning)
        if self.calls:
            message["tool_calls"] = [
                {
                    "id": c["id"],
                    "type": "function",
                    "function": {"name": c["name"], "arguments": c["arguments"]},
                }
                for _, c in sorted(self.calls.items())
            ]
        body: dict[str, Any] = {"choices": [{"message": message, "finish_reason": self.finish_reason}]}
        if self.usage is not None:
            body["usage"] = self.usage
        if self.timings is not None:
            body["timings"] = self.timings
        return body


class MeteringProxy(LoopbackServer):
    """`with MeteringProxy(upstream, meter) as proxy:` hand `proxy.url` to the agent as its model URL."""

    def __init__(
        self,
        upstream: str,
        meter: Meter,
        *,
        settings: CellSettings | None = None,
        api_key: str | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.meter = meter
        self.settings = settings or CellSettings()
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(UPSTREAM_TIMEOUT_S, connect=10.0),
            # Headers and body go out in two writes: without NODELAY, Nagle holds the body for the
            # server's delayed ACK (40 ms a request on Linux loopback).
            transport=httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]),
        )
        super().__init__(_handler_for(self), name="metering proxy")

    @property
    def url(self) -> str:
        return f"{self.root}/v1"

    def stop(self) -> None:
        super().stop()
        self.client.close()

    def target(self, path: str) -> str:
        """`/v1/chat/completions` or `/chat/completions` on the proxy -> the same under the upstream's /v1."""
        rest = path if not path.startswith("/v1/") and path != "/v1" else path[3:]
        return f"{self.upstream}{rest}"

    def forward_headers(self, headers: Iterable[tuple[str, str]]) -> dict[str, str]:
        keep = {k: v for k, v in headers if k.lower() not in _HOP_HEADERS}
        if "Authorization" in self.client.headers:  # the harness's key for the upstream wins
            keep = {k: v for k, v in keep.items() if k.lower() != "authorization"}
        return keep


def _error_body(message: str, kind: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": kind, "code": kind}}).encode()


def _handler_for(proxy: MeteringProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        wbufsize = 1 << 16  # headers and body leave in one write (flushed per request and per SSE event)
        relaying = False  # a stream's headers went out: a later upstream fault can only cut it short

        def do_GET(self) -> None:
            try:
                response = proxy.client.get(
                    proxy.target(self.path), headers=proxy.forward_headers(self.headers.items())
                )
            except httpx.TransportError as exc:
                self._send(502, _error_body(self._upstream_failed(exc), "upstream_error"))
                return
            self._send(response.status_code, response.content, response.headers.get("content-type"))

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not self.path.rstrip("/").endswith(_CHAT):
                message = f"agentloop proxy: only {_CHAT} is served (got POST {self.path})"
                self._send(404, _error_body(message, "not_found"))
                return
            try:
                body = json.loads(raw)
                if not isinstance(body, dict):
                    raise ValueError("not an object")
            except ValueError:
                self._send(
                    400, _error_body("agentloop proxy: the request body is not a JSON object", "bad_request")
                )
                return
            refusal = proxy.meter.admit()
            if refusal is not None:
                self._send(403, _error_body(refusal, "budget_exceeded"))
                return
            body = apply_cell(body, proxy.settings)
            if body.get("stream"):
                self._stream(body)
            else:
                self._complete(body)

        def _complete(self, body: dict[str, Any]) -> None:
            started = time.monotonic()
            try:
                response = proxy.client.post(
                    proxy.target(self.path), json=body, headers=proxy.forward_headers(self.headers.items())
                )
            except httpx.TransportError as exc:
                self._send(502, _error_body(self._upstream_failed(exc), "upstream_error"))
                return
            latency = time.monotonic() - started
            # Counted before the agent sees the reply, so its next request meets an up-to-date meter.
            self._settle(body, response.status_code, response.content, latency)
            self._send(response.status_code, response.content, response.headers.get("content-type"))

        def _settle(self, body: dict[str, Any], status: int, content: bytes, latency: float) -> None:
            if status >= 400:
                proxy.meter.failed(
                    f"the model server answered {status}: {excerpt(content.decode('utf-8', 'replace'))}"
                )
                return
            self._count(body, lambda: json.loads(content), latency)

        def _count(self, body: dict[str, Any], reply: Callable[[], Any], latency: float) -> None:
            try:
                proxy.meter.count(body, reply(), latency)
            except Exception as exc:  # an unreadable reply is recorded, never a crash
                proxy.meter.failed(f"unreadable reply from the model server: {excerpt(str(exc))}")

        def _stream(self, body: dict[str, Any]) -> None:
            wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            upstream_body = {
                **body,
                "stream_options": {**(body.get("stream_options") or {}), "include_usage": True},
            }
            assembler = StreamAssembler()
            started = time.monotonic()
            try:
                with proxy.client.stream(
                    "POST",
                    proxy.target(self.path),
                    json=upstream_body,
                    headers=proxy.forward_headers(self.headers.items()),
                ) as response:
                    if response.status_code >= 400:
                        content = response.read()
                        self._settle(body, response.status_code, content, time.monotonic() - started)
                        self._send(response.status_code, content, response.headers.get("content-type"))
                        return
                    self._relay(response, assembler, wants_usage)
            except httpx.TransportError as exc:
                message = self._upstream_failed(exc)
                if not self.relaying:  # nothing sent yet: the agent gets an error it can read
                    self._send(502, _error_body(message, "upstream_error"))
                self.close_connection = True
                return
            self._count(body, assembler.completion, time.monotonic() - started)
            self._chunk(_DONE + b"\n\n")  # the stream ends only once the reply is counted
            self._chunk(b"")

        def _relay(self, response: httpx.Response, assembler: StreamAssembler, wants_usage: bool) -> None:
            """Pass each SSE event on as it arrives (chunked), except a usage event nobody asked for and
            `[DONE]`, which goes out once the reply is counted."""
            self.relaying = True
            self.send_response(response.status_code)
            self.send_header("Content-Type", response.headers.get("content-type", "text/event-stream"))
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in _events(response.iter_bytes()):
                assembler.feed(event)
                if event.strip() != _DONE and (wants_usage or not _usage_only(event)):
                    self._chunk(event)

        def _chunk(self, data: bytes) -> None:
            try:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _upstream_failed(self, exc: httpx.TransportError) -> str:
            why = describe_transport_error(exc)
            message = f"agentloop proxy: the model server at {proxy.upstream} failed ({why})"
            proxy.meter.failed(message)
            return message

        def _send(self, status: int, data: bytes, content_type: str | None = "application/json") -> None:
            send_body(self, status, data, content_type or "application/json")

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the transcript is the log."""

    return Handler


def _events(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Whole SSE events (ending in a blank line) from arbitrary byte chunks; a tail without one last."""
    pending = b""
    for chunk in chunks:
        pending += chunk.replace(b"\r\n", b"\n")
        *events, pending = pending.split(b"\n\n")
        for event in events:
            yield event + b"\n\n"
    if pending.strip():
        yield pending + b"\n\n"


def _usage_only(event: bytes) -> bool:
    """The final `choices: []` event carrying usage, which only clients that asked for it expect."""
    for line in event.splitlines():
        if line.startswith(b"data:") and line[5:].strip() not in (b"", b"[DONE]"):
            try:
                data = json.loads(line[5:])
            except json.JSONDecodeError:
                return False
            return isinstance(data, dict) and data.get("choices") == [] and "usage" in data
    return False
