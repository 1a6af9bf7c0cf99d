"""The OpenAI-compatible chat client every HTTP runtime adapter builds on.

Ollama (/v1), LM Studio, llama-server, vLLM and OpenAI itself all speak `/chat/completions`; they
differ in a few request switches (reasoning, constrained decoding) and reply quirks (arguments as a
string or an object, empty tool-call ids, `reasoning` vs `reasoning_content`, llama.cpp `timings`).
Subclasses override the switches; the wire handling, retries and error wording live here once.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from pytest_agentloop.backends.base import (
    BackendError,
    ChatRequest,
    ChatResponse,
    InfraError,
    JsonTooDeep,
    ModelSpec,
    RawToolCall,
    ServingTiming,
    clean_json,
)
from pytest_agentloop.records import Usage

OPENAI_URL = "https://api.openai.com/v1"
MAX_BACKOFF_S = 8.0
MAX_RETRY_AFTER_S = 120.0  # the longest Retry-After honoured when no attempt budget bounds the wait
PERMANENT_STATUS = frozenset({400, 404, 422})  # with 401/403: requests the server will never accept
MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")
MAX_COUNT = 2**53  # larger token counts are nonsense (and overflow a float or a database column)
MAX_SECONDS = 1e7
_LONE = re.compile("[\ud800-\udfff]")
CHECK_TIMEOUT_S = 10.0
EXCERPT_CHARS = 300
RETRYABLE_STATUS = frozenset({429}) | frozenset(range(500, 600))


def default_openai_base_url() -> str:
    """Where `openai:MODEL` goes when no --agent-host is given."""
    return os.environ.get("OPENAI_BASE_URL") or OPENAI_URL


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """One line of a reply body, short enough for an error message."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def root_url(url: str) -> str:
    """`http://host:8080/v1` -> `http://host:8080`: where a runtime's own endpoints live."""
    return url.rstrip("/").removesuffix("/v1")


def v1_url(url: str) -> str:
    """`http://host:8080` or `http://host:8080/v1` -> `http://host:8080/v1` (--agent-host takes either)."""
    return f"{root_url(url)}/v1"


def env_api_key(base_url: str) -> str | None:
    """OPENAI_API_KEY is sent to OpenAI only, never to a local server that happens to be configured."""
    if urlsplit(base_url).hostname == urlsplit(OPENAI_URL).hostname:
        return os.environ.get("OPENAI_API_KEY")
    return None


def describe_transport_error(exc: httpx.TransportError) -> str:
    """A few words for a connection fault: users act on 'connection refused', not on a class name."""
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    text = str(exc)
    if "refused" in text.lower():
        return "connection refused"
    return excerpt(text, 120) or type(exc).__name__


def wait_until(done: Callable[[], bool], *, timeout_s: float, interval_s: float, failure: str) -> None:
    """Poll `done` until it holds, at most `timeout_s` (and so a bounded count); else InfraError(failure)."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / interval_s) + 2):
        if done():
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(interval_s)
    raise InfraError(failure)


@dataclass
class Sent:
    """A reply that came back, with the failed tries (and their reasons) it took to get it."""

    response: httpx.Response
    failures: list[str]
    lost_s: float  # wall time of the failed tries and the waits between them


def retry_after_s(value: str | None) -> float | None:
    """A `Retry-After` header in seconds (RFC 9110: delay-seconds or an HTTP-date); None if absent or bad."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value.strip())
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


class Wire:
    """HTTP to one runtime: a pooled client, bounded retries, and error messages that name the URL.

    Chat backends and lifecycle hosts both build on it, so every runtime fails the same way.
    """

    def __init__(
        self, base_url: str, *, api_key: str | None = None, retries: int = 3, backoff_s: float = 0.5
    ) -> None:
        if retries < 1:
            raise BackendError(f"retries={retries} for {base_url}: it must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.api_key = api_key
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(CHECK_TIMEOUT_S))

    def close(self) -> None:
        self._client.close()

    def send(self, method: str, path: str, timeout_s: float, **kwargs: Any) -> httpx.Response:
        """One request with retries on connection faults, timeouts, 429 and 5xx; then InfraError.

        `path` is relative to `base_url`, or an absolute URL for a runtime's own endpoints.
        """
        return self.send_until(method, path, timeout_s, None, **kwargs).response

    def send_until(
        self, method: str, path: str, timeout_s: float, deadline: float | None, **kwargs: Any
    ) -> Sent:
        """`send` within a deadline (time.monotonic()): every try and every wait between tries shares
        the time left, so a hung server costs the attempt its remaining budget once, not once per try.
        A `Retry-After` (429, 503) is honoured when it fits before the deadline (at most
        MAX_RETRY_AFTER_S without one); asking for longer ends the retries with that reason.
        """
        url = path if "://" in path else f"{self.base_url}{path}"
        started = time.monotonic()
        failures: list[tuple[str, str]] = []  # (what failed, the server's words or a note)
        wait, cut_off, cut_at = 0.0, False, None
        for attempt in range(self.retries):
            left = None if deadline is None else deadline - time.monotonic() - wait
            if left is not None and left <= 0:
                if failures:  # the server failed and left no time to retry: its failure, not the clock's
                    note = f"no time left in the attempt's budget to wait {wait:.1f}s and retry"
                    failures[-1] = (failures[-1][0], "; ".join(filter(None, (failures[-1][1], note))))
                cut_off = not failures
                break
            if wait:
                time.sleep(wait)
            budget = timeout_s if left is None else min(timeout_s, left)
            timeout = httpx.Timeout(budget, connect=min(budget, CHECK_TIMEOUT_S))
            tried = time.monotonic()
            try:
                response = self._client.request(method, url, timeout=timeout, **kwargs)
            except httpx.TransportError as exc:
                failures.append((describe_transport_error(exc), ""))
                if isinstance(exc, httpx.TimeoutException) and budget < timeout_s:
                    cut_off, cut_at = True, tried  # the attempt's budget, not the server, ended this try
                    break
                wait = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
                continue
            if response.status_code not in RETRYABLE_STATUS:
                return Sent(response, [join_failure(f) for f in failures], tried - started)
            failures.append((str(response.status_code), server_words(response)))
            asked = retry_after_s(response.headers.get("retry-after"))
            if asked is not None:
                limit = MAX_RETRY_AFTER_S if deadline is None else deadline - time.monotonic()
                if asked > limit:
                    left_s = max(limit, 0.0)
                    note = f"asked to retry after {asked:.0f}s, beyond the {left_s:.0f}s left"
                    failures[-1] = (failures[-1][0], f"{failures[-1][1]} ({note})")
                    break
                wait = asked
            else:
                wait = min(self.backoff_s * 2**attempt, MAX_BACKOFF_S)
        raise InfraError(
            f"{method} {url}: {describe_failures(failures)}",
            tries=[join_failure(f) for f in failures],
            lost_s=(cut_at or time.monotonic()) - started,  # the cut-off try is not a failed one
            cut_off=cut_off,
        )

    def call(self, method: str, path: str, timeout_s: float = CHECK_TIMEOUT_S, **kwargs: Any) -> Any:
        """`send`, then the JSON body (see `checked`)."""
        return self.checked(self.send(method, path, timeout_s, **kwargs))

    def checked(self, response: httpx.Response) -> Any:
        """The JSON body of a reply (None when empty); a 4xx is an InfraError naming request and reply."""
        if response.status_code >= 400:
            raise InfraError(
                f"{response.request.method} {response.request.url}: {response.status_code}: "
                f"{excerpt(response.text)}"
            )
        return self.json_of(response) if response.content.strip() else None

    @staticmethod
    def json_of(response: httpx.Response) -> Any:
        """The decoded body, made safe to keep (see `clean_json`); anything else is an InfraError."""
        try:
            return clean_json(response.json())
        except (ValueError, RecursionError) as exc:  # not JSON, not UTF-8, nested past any reply's need
            why = str(exc) if isinstance(exc, JsonTooDeep) else "not JSON"
            raise InfraError(
                f"{response.request.method} {response.request.url}: {response.status_code} "
                f"with a body that is {why}: {excerpt(response.text)}"
            ) from None


def join_failure(failure: tuple[str, str]) -> str:
    return ": ".join(filter(None, failure))


def describe_failures(failures: list[tuple[str, str]]) -> str:
    """`503 after 3 tries: Loading model`, with each earlier reason that differed from the last."""
    if not failures:
        return "no try fitted in the attempt's time left"
    (what, words), count = failures[-1], len(failures)
    earlier = list(dict.fromkeys(join_failure(f) for f in failures[:-1] if f != failures[-1]))
    text = f"{what} after {count} {'try' if count == 1 else 'tries'}" + (f": {words}" if words else "")
    return text + (f" (earlier: {'; '.join(earlier)})" if earlier else "")


def server_words(response: httpx.Response, limit: int = EXCERPT_CHARS) -> str:
    """The server's own error message (OpenAI `error.message`, FastAPI `detail`, ...), else the body."""
    try:
        data = response.json()
    except (ValueError, RecursionError):
        return excerpt(response.text, limit)
    if isinstance(data, dict):
        error = data.get("error")
        for said in (
            error.get("message") if isinstance(error, dict) else error,
            data.get("message"),
            data.get("detail"),
        ):
            if isinstance(said, str) and said.strip():
                return excerpt(_LONE.sub("\ufffd", said), limit)
            if isinstance(said, list) and said:  # FastAPI 422: [{"loc": ..., "msg": ...}]
                msgs = [str(d.get("msg")) for d in said if isinstance(d, dict) and d.get("msg")]
                if msgs:
                    return excerpt(_LONE.sub("\ufffd", "; ".join(msgs)), limit)
    return excerpt(response.text, limit)


class OpenAIBackend(Wire):
    """A model behind an OpenAI-compatible `/chat/completions` endpoint at `base_url` (ending in /v1)."""

    # Whether /models lists the names clients send as `model` (llama-server single-model mode does not).
    lists_model_names = True
    models_path = "/models"
    chat_path = "/chat/completions"

    def __init__(
        self,
        spec: ModelSpec,
        base_url: str,
        *,
        api_key: str | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        extra_body: dict[str, Any] | None = None,
        max_tokens_field: str = "max_tokens",
    ) -> None:
        super().__init__(
            base_url, api_key=api_key or env_api_key(base_url), retries=retries, backoff_s=backoff_s
        )
        if max_tokens_field not in MAX_TOKENS_FIELDS:
            raise BackendError(
                f"max_tokens_field = {max_tokens_field!r} for {spec.raw}: use one of "
                f"{', '.join(MAX_TOKENS_FIELDS)} in [backends.{spec.backend}]"
            )
        self.spec = spec
        self.extra_body = dict(extra_body or {})
        # Which field carries the reply cap: o-series and newer OpenAI models refuse `max_tokens`.
        self.max_tokens_field = max_tokens_field
        self._system_fingerprint: str | None = None
        self._models: list[dict[str, Any]] | None = None

    # -- request dialect: subclasses override these -------------------------------------------------

    def reasoning_fields(self, on: bool) -> dict[str, Any]:
        """The request fields that switch thinking on or off (OpenAI: `reasoning_effort`)."""
        return {"reasoning_effort": "medium" if on else "none"}

    def schema_fields(self, schema: dict[str, Any]) -> dict[str, Any]:
        """The request fields that constrain the whole reply to `schema`."""
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "tool_call", "schema": schema, "strict": True},
            }
        }

    def parse_reply(self, data: Any) -> ChatResponse:
        return parse_chat_completion(data)

    def has_model(self, ids: list[str]) -> bool:
        """Whether the host's model list names this backend's model."""
        return self.spec.model in ids

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": request.messages,
            self.max_tokens_field: request.max_tokens,
        }
        if request.tools:
            body["tools"] = request.tools
        for name in ("temperature", "top_p", "seed"):
            value = getattr(request, name)
            if value is not None:
                body[name] = value
        if request.reasoning is not None:
            body.update(self.reasoning_fields(request.reasoning))
        if request.json_schema is not None:
            body.update(self.schema_fields(request.json_schema))
        body.update(self.extra_body)
        return body

    # -- the Backend protocol ----------------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatResponse:
        """One completion within the request's deadline; every failure is an InfraError or, when the
        user must fix something (a refused key, an unknown model, a request the server will never
        accept), a BackendError. No reply shape escapes as anything else."""
        started = time.monotonic()
        sent = self._post(request)
        if self._asks_for_max_completion_tokens(sent.response):
            self.max_tokens_field = "max_completion_tokens"  # for every later request too
            again = self._post(request)
            sent = Sent(again.response, sent.failures + again.failures, again.lost_s + sent.lost_s)
        answered = started + sent.lost_s
        try:
            parsed = self.read_reply(sent.response)
        except InfraError as exc:
            raise InfraError(
                str(exc), tries=[*sent.failures, str(exc)], lost_s=time.monotonic() - started
            ) from None
        parsed.latency_s = time.monotonic() - answered
        parsed.retries, parsed.infra_s = sent.failures, sent.lost_s
        return parsed

    def read_reply(self, response: httpx.Response) -> ChatResponse:
        """A chat reply, whatever its body: a ChatResponse, an InfraError, or (a 4xx the user must
        fix) a BackendError. Nothing else escapes: a shape no parser foresaw is the runtime's fault."""
        self.raise_for_client_error(response)
        if not 200 <= response.status_code < 300:  # a redirect, or a 5xx the retries gave back
            raise InfraError(f"POST {response.request.url}: {response.status_code}: {server_words(response)}")
        data = self.json_of(response)
        try:
            parsed = self.parse_reply(data)
        except InfraError:
            raise
        except Exception as exc:
            raise InfraError(
                f"POST {response.request.url}: {response.status_code} with a reply the harness cannot "
                f"read ({type(exc).__name__}: {excerpt(str(exc), 120)}): {excerpt(response.text)}"
            ) from None
        if isinstance(data, dict) and isinstance(data.get("system_fingerprint"), str):
            self._system_fingerprint = data["system_fingerprint"]
        return parsed

    def _post(self, request: ChatRequest) -> Sent:
        body = self.request_body(request)
        return self.send_until("POST", self.chat_path, request.timeout_s, request.deadline, json=body)

    def _asks_for_max_completion_tokens(self, response: httpx.Response) -> bool:
        """OpenAI's o-series and newer models answer 400 "Unsupported parameter: 'max_tokens' ... use
        'max_completion_tokens' instead"; the harness switches once rather than fail every attempt."""
        text = response.text if response.status_code == 400 else ""
        return (
            self.max_tokens_field == "max_tokens" and "max_tokens" in text and "max_completion_tokens" in text
        )

    def fingerprint(self) -> dict[str, Any]:
        entry = next((m for m in self.models() if m.get("id") == self.spec.model), None)
        return {
            "runtime": "openai-compatible",
            "base_url": self.base_url,
            "model": self.spec.model,
            "server_model": entry,
            "system_fingerprint": self._system_fingerprint,
            "max_tokens_field": self.max_tokens_field,
        }

    # -- startup check and model listing -----------------------------------------------------------

    def check(self) -> None:
        """Fail fast, once per model, on what the user must fix: no server, a refused key, no such model."""
        try:  # retried like a chat: one dropped connection at start must not end the run
            response = self.send("GET", self.models_path, CHECK_TIMEOUT_S)
        except InfraError as exc:
            failure = str(exc).partition(f"{self.models_path}: ")[2] or str(exc)
            raise BackendError(
                f"cannot reach {self.base_url} ({failure}): is the server running? pass --agent-host URL"
            ) from None
        self.raise_for_client_error(response, listing=True)
        self._models = self.model_entries(self.json_of(response))
        ids = [str(m.get("id")) for m in self._models]
        if self.lists_model_names and ids and not self.has_model(ids):
            raise self.model_not_found(ids)

    def models(self) -> list[dict[str, Any]]:
        """The host's model entries, each with an `id` (cached: the list is read once per backend)."""
        if self._models is None:
            response = self.send("GET", self.models_path, CHECK_TIMEOUT_S)
            self.raise_for_client_error(response, listing=True)
            self._models = self.model_entries(self.json_of(response))
        return self._models

    @staticmethod
    def model_entries(data: Any) -> list[dict[str, Any]]:
        entries = data.get("data") if isinstance(data, dict) else None
        return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []

    def model_not_found(self, available: list[str] | None = None) -> BackendError:
        if available is None:
            try:
                available = [str(m.get("id")) for m in self.models()]
            except (InfraError, BackendError) as exc:
                return BackendError(
                    f"model {self.spec.model!r} not found on {self.base_url} (and listing its models "
                    f"failed: {exc}); check the name in --agent-model {self.spec.raw}"
                )
        listing = ", ".join(available) if available else "none"
        return BackendError(
            f"model {self.spec.model!r} not found on {self.base_url}; it has: {listing}. "
            f"Fix: use one of those in --agent-model {self.spec.backend}:NAME, or pull/load it on the host"
        )

    def raise_for_client_error(self, response: httpx.Response, *, listing: bool = False) -> None:
        """4xx replies. A refused key, an unknown model and a request the server will never accept
        (400/404/422: a parameter it does not take, a bad extra_body) are the user's to fix, once for
        the run, in the server's own words; a context overflow ends this attempt as infra; other 4xx
        (408, 409, 413, ...) are infra."""
        status = response.status_code
        if status < 400 or status >= 500:
            return
        where = f"{response.request.method} {response.request.url}"
        words = server_words(response)
        if status in (401, 403):
            raise BackendError(
                f"{where}: {status}: the host refused the API key ({excerpt(words, 120)}); "
                "set OPENAI_API_KEY (OpenAI) or pass the host's key"
            )
        if not listing and is_model_not_found(status, response.text):
            raise self.model_not_found()
        if status in PERMANENT_STATUS and not listing and not is_context_overflow(words):
            raise BackendError(
                f"{where}: {status}: the server refuses this request: {words}. Fix the setting it names "
                f"([backends.{self.spec.backend}] extra_body or max_tokens_field, the cell's settings, or "
                "the model); retrying cannot help"
            )
        raise InfraError(f"{where}: {status}: {words}")


def is_model_not_found(status: int, body: str) -> bool:
    """404, or a 400 whose message says the model does not exist (vLLM, LM Studio word it so)."""
    text = body.lower()
    says_so = "model" in text and ("not found" in text or "does not exist" in text or "not_found" in text)
    return status == 404 or (status == 400 and says_so)


def is_context_overflow(words: str) -> bool:
    """A 400 about the history outgrowing the context (vLLM "maximum context length", llama.cpp
    "exceeds the available context size", OpenAI `context_length_exceeded`): this attempt's, not the run's."""
    text = words.lower()
    return "context" in text and any(w in text for w in ("length", "size", "window", "exceed"))


# -- reply parsing: every field read with its type checked, so no body shape raises ----------------


def parse_chat_completion(data: Any) -> ChatResponse:
    """An OpenAI `chat.completion` body -> ChatResponse, tolerating each runtime's quirks.

    Fields of the wrong type count as absent (usage then unknown, not 0); `content` as a list of
    parts is joined, as OpenAI and vLLM send it. Only a body with no message at all is an InfraError.
    """
    choices = data.get("choices") if isinstance(data, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(data, dict) or not isinstance(choice, dict) or not isinstance(message, dict):
        raise InfraError(f"chat reply has no choices[0].message: {shape_of(data)}")
    timings = data.get("timings")
    timings = timings if isinstance(timings, dict) else {}
    timing = llamacpp_timing(timings)
    return ChatResponse(
        content=text_of(message.get("content")),
        reasoning=text_of(message.get("reasoning_content")) or text_of(message.get("reasoning")) or None,
        tool_calls=parse_tool_calls(message.get("tool_calls")),
        finish_reason=string_of(choice.get("finish_reason")),
        usage=parse_usage(data.get("usage"), timings),
        model_s=model_seconds(timing),
        timing=timing,
    )


def shape_of(data: Any) -> str:
    """What a body is, in a few words, without recursing into it (it may be nested thousands deep)."""
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return f"the server answered with an error: {excerpt(error['message'], 200)}"
        if isinstance(error, str):
            return f"the server answered with an error: {excerpt(error, 200)}"
        keys = ", ".join(excerpt(str(k), 40) for k in list(data)[:8])
        return f"an object with keys {keys or '(none)'}"
    return f"a JSON {type(data).__name__}" if data is not None else "an empty body"


def text_of(value: Any) -> str:
    """A message text: a string, or a list of parts (`{"type": "text", "text": ...}` or strings) joined."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = (p if isinstance(p, str) else p.get("text") if isinstance(p, dict) else None for p in value)
        return "".join(p for p in parts if isinstance(p, str))
    return ""


def string_of(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def count_of(value: Any) -> int | None:
    """A token count: a non-negative integer below MAX_COUNT (floats that are whole numbers too)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if 0 <= value < MAX_COUNT else None


def seconds_of(value: Any, per_second: float) -> float | None:
    """A duration in units of 1/`per_second` s (ms: 1000, ns: 1e9) as seconds; None if not a sane one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int) and abs(value) >= MAX_COUNT * per_second:
        return None  # float() of a huge integer overflows
    seconds = float(value) / per_second
    return seconds if math.isfinite(seconds) and 0 <= seconds < MAX_SECONDS else None


def parse_tool_calls(value: Any) -> list[RawToolCall]:
    """`tool_calls` entries that are objects; the rest (wrong types) are dropped, never raised on."""
    if not isinstance(value, list):
        return []
    calls = []
    for call in value:
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        arguments = function.get("arguments")
        call_id = call.get("id")
        calls.append(
            RawToolCall(
                id=call_id if isinstance(call_id, str) else str(count_of(call_id) or ""),
                name=string_of(function.get("name")) or "",
                arguments=arguments if isinstance(arguments, dict | str) else "",
            )
        )
    return calls


def parse_usage(usage: Any, timings: dict[str, Any]) -> Usage | None:
    """Token counts from `usage`, else from llama.cpp's `timings`; None when the server gives neither."""
    usage = usage if isinstance(usage, dict) else {}
    prompt, completion = count_of(usage.get("prompt_tokens")), count_of(usage.get("completion_tokens"))
    details = usage.get("prompt_tokens_details")
    cached = count_of(details.get("cached_tokens")) if isinstance(details, dict) else None
    if cached is None:
        cached = count_of(timings.get("cache_n"))
    if prompt is None or completion is None:
        evaluated, predicted = count_of(timings.get("prompt_n")), count_of(timings.get("predicted_n"))
        if evaluated is None or predicted is None:
            return None
        prompt, completion = evaluated + (cached or 0), predicted
    return Usage(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=cached or 0)


def llamacpp_timing(timings: dict[str, Any]) -> ServingTiming | None:
    """llama.cpp's `timings` (prompt_n/prompt_ms, predicted_n/predicted_ms); None when it sent none."""
    timing = ServingTiming(
        prefill_tokens=count_of(timings.get("prompt_n")),
        prefill_s=seconds_of(timings.get("prompt_ms"), 1000.0),
        decode_tokens=count_of(timings.get("predicted_n")),
        decode_s=seconds_of(timings.get("predicted_ms"), 1000.0),
    )
    return None if timing == ServingTiming() else timing


def model_seconds(timing: ServingTiming | None) -> float | None:
    """Prefill + decode time as the server reports it; None when it reports neither."""
    if timing is None or (timing.prefill_s is None and timing.decode_s is None):
        return None
    return (timing.prefill_s or 0.0) + (timing.decode_s or 0.0)
