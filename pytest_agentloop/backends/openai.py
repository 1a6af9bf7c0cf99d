"""The OpenAI-compatible chat client every HTTP runtime adapter builds on.

Ollama (/v1), LM Studio, llama-server, vLLM and OpenAI itself all speak `/chat/completions`; they
differ in a few request switches (reasoning, constrained decoding) and reply quirks (arguments as a
string or an object, empty tool-call ids, `reasoning` vs `reasoning_content`, llama.cpp `timings`).
Subclasses override the switches; the wire handling, retries and error wording live here once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from pytest_agentloop.backends.base import (
    BackendError,
    ChatRequest,
    ChatResponse,
    InfraError,
    ModelSpec,
    RawToolCall,
)
from pytest_agentloop.records import Usage

OPENAI_URL = "https://api.openai.com/v1"
MAX_BACKOFF_S = 8.0
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
        url = path if "://" in path else f"{self.base_url}{path}"
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, CHECK_TIMEOUT_S))
        failure = ""
        for attempt in range(self.retries):
            if attempt:
                time.sleep(min(self.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
            try:
                response = self._client.request(method, url, timeout=timeout, **kwargs)
            except httpx.TransportError as exc:
                failure = f"{describe_transport_error(exc)} after {attempt + 1} tries"
                continue
            if response.status_code not in RETRYABLE_STATUS:
                return response
            failure = f"{response.status_code} after {attempt + 1} tries: {excerpt(response.text)}"
        raise InfraError(f"{method} {url}: {failure}")

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
        try:
            return response.json()
        except ValueError:
            raise InfraError(
                f"{response.request.method} {response.request.url}: {response.status_code} "
                f"with a body that is not JSON: {excerpt(response.text)}"
            ) from None


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
    ) -> None:
        super().__init__(
            base_url, api_key=api_key or env_api_key(base_url), retries=retries, backoff_s=backoff_s
        )
        self.spec = spec
        self.extra_body = dict(extra_body or {})
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
            "max_tokens": request.max_tokens,
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
        started = time.monotonic()
        response = self.send("POST", self.chat_path, request.timeout_s, json=self.request_body(request))
        self.raise_for_client_error(response)
        data = self.json_of(response)
        if isinstance(data, dict) and data.get("system_fingerprint"):
            self._system_fingerprint = str(data["system_fingerprint"])
        parsed = self.parse_reply(data)
        parsed.latency_s = time.monotonic() - started
        return parsed

    def fingerprint(self) -> dict[str, Any]:
        entry = next((m for m in self.models() if m.get("id") == self.spec.model), None)
        return {
            "runtime": "openai-compatible",
            "base_url": self.base_url,
            "model": self.spec.model,
            "server_model": entry,
            "system_fingerprint": self._system_fingerprint,
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
        return [e for e in entries or [] if isinstance(e, dict)]

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
        """4xx replies: a refused key or an unknown model is the user's to fix; anything else is infra."""
        status = response.status_code
        if status < 400 or status >= 500:
            return
        where = f"{response.request.method} {response.request.url}"
        if status in (401, 403):
            raise BackendError(
                f"{where}: {status}: the host refused the API key ({excerpt(response.text, 120)}); "
                "set OPENAI_API_KEY (OpenAI) or pass the host's key"
            )
        if not listing and is_model_not_found(status, response.text):
            raise self.model_not_found()
        raise InfraError(f"{where}: {status}: {excerpt(response.text)}")


def is_model_not_found(status: int, body: str) -> bool:
    """404, or a 400 whose message says the model does not exist (vLLM, LM Studio word it so)."""
    text = body.lower()
    says_so = "model" in text and ("not found" in text or "does not exist" in text or "not_found" in text)
    return status == 404 or (status == 400 and says_so)


def parse_chat_completion(data: Any) -> ChatResponse:
    """An OpenAI `chat.completion` body -> ChatResponse, tolerating each runtime's quirks."""
    try:
        choice = data["choices"][0]
        message = choice.get("message") or {}
    except (KeyError, IndexError, TypeError, AttributeError):
        raise InfraError(f"chat reply has no choices[0].message: {excerpt(str(data))}") from None
    return ChatResponse(
        content=message.get("content") or "",
        reasoning=message.get("reasoning_content") or message.get("reasoning") or None,
        tool_calls=[parse_tool_call(c) for c in message.get("tool_calls") or [] if isinstance(c, dict)],
        finish_reason=choice.get("finish_reason"),
        usage=parse_usage(data.get("usage") or {}, data.get("timings") or {}),
        model_s=parse_timings(data.get("timings") or {}),
    )


def parse_tool_call(call: dict[str, Any]) -> RawToolCall:
    function = call.get("function") or {}
    arguments = function.get("arguments")
    return RawToolCall(
        id=str(call.get("id") or ""),
        name=str(function.get("name") or ""),
        arguments=arguments if isinstance(arguments, dict | str) else "",
    )


def parse_usage(usage: dict[str, Any], timings: dict[str, Any]) -> Usage:
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens")
    if cached is None:
        cached = timings.get("cache_n")
    return Usage(
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        cached_tokens=int(cached or 0),
    )


def parse_timings(timings: dict[str, Any]) -> float | None:
    """llama.cpp's prefill + decode milliseconds, as seconds; None when the server does not say."""
    if "prompt_ms" not in timings and "predicted_ms" not in timings:
        return None
    return (float(timings.get("prompt_ms") or 0.0) + float(timings.get("predicted_ms") or 0.0)) / 1000.0
