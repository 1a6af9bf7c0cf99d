"""Ollama through its native API: /api/chat for chat, /api/tags, /api/ps, /api/show for the host.

The native endpoint is used rather than /v1 because only it takes `options.num_ctx` (the /v1 route
silently runs at the server's default context) and `format` as a JSON schema, and it reports the
reasoning in `message.thinking` and durations in nanoseconds. Unloading is `keep_alive: 0` followed
by polling /api/ps, because a runner can hang in "Stopping…" (ollama#7606).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pytest_agentloop.backends.base import (
    BackendError,
    ChatRequest,
    ChatResponse,
    InfraError,
    ModelSpec,
    RawToolCall,
    ServingTiming,
)
from pytest_agentloop.backends.lifecycle import LoadedModel, ModelMetadata
from pytest_agentloop.backends.openai import (
    CHECK_TIMEOUT_S,
    OpenAIBackend,
    Wire,
    count_of,
    model_seconds,
    parse_tool_calls,
    root_url,
    seconds_of,
    shape_of,
    string_of,
    text_of,
    wait_until,
)
from pytest_agentloop.records import Usage

DEFAULT_URL = "http://127.0.0.1:11434"
LOAD_TIMEOUT_S = 600.0


def ollama_name(model: str) -> str:
    """Ollama lists `qwen3` as `qwen3:latest`."""
    return model if ":" in model else f"{model}:latest"


def to_ollama_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI-shaped history -> /api/chat: arguments as objects, tool replies named by tool."""
    names: dict[str, str] = {}
    converted = []
    for message in messages:
        out = {k: v for k, v in message.items() if k not in ("tool_calls", "tool_call_id", "reasoning")}
        if message.get("reasoning"):
            out["thinking"] = message["reasoning"]
        calls = []
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments or "{}")
                except ValueError:
                    arguments = {}
            names[str(call.get("id") or "")] = str(function.get("name") or "")
            calls.append({"function": {"name": function.get("name"), "arguments": arguments or {}}})
        if calls:
            out["tool_calls"] = calls
        if message.get("role") == "tool" and message.get("tool_call_id") in names:
            out["tool_name"] = names[message["tool_call_id"]]
        converted.append(out)
    return converted


def parse_ollama_chat(data: Any) -> ChatResponse:
    """A non-streamed /api/chat reply -> ChatResponse (durations are nanoseconds).

    Every field is read with its type checked (openai.py's readers), so no body shape raises; the
    prompt and generation durations also give the serving telemetry (prefill and decode rates).
    """
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(message, dict):
        raise InfraError(f"ollama /api/chat reply has no message: {shape_of(data)}")
    calls = [
        RawToolCall(id=call.id, name=call.name, arguments=call.arguments or {})
        for call in parse_tool_calls(message.get("tool_calls"))
    ]
    prompt, completion = count_of(data.get("prompt_eval_count")), count_of(data.get("eval_count"))
    timing = ServingTiming(
        prefill_tokens=prompt,
        prefill_s=seconds_of(data.get("prompt_eval_duration"), 1e9),
        decode_tokens=completion,
        decode_s=seconds_of(data.get("eval_duration"), 1e9),
    )
    known = prompt is not None and completion is not None
    return ChatResponse(
        content=text_of(message.get("content")),
        reasoning=text_of(message.get("thinking")) or None,
        tool_calls=calls,
        finish_reason="tool_calls" if calls else string_of(data.get("done_reason")),
        usage=Usage(prompt_tokens=prompt or 0, completion_tokens=completion or 0) if known else None,
        model_s=model_seconds(timing),
        timing=None if timing == ServingTiming() else timing,
    )


class OllamaBackend(OpenAIBackend):
    """A model on an Ollama server, spoken to natively; errors and retries as for every backend."""

    models_path = "/api/tags"
    chat_path = "/api/chat"

    def __init__(
        self,
        spec: ModelSpec,
        base_url: str = DEFAULT_URL,
        *,
        num_ctx: int | None = None,
        keep_alive: str | int | None = None,
        retries: int = 3,
        backoff_s: float = 0.5,
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            spec, root_url(base_url), retries=retries, backoff_s=backoff_s, extra_body=extra_body
        )
        self.num_ctx = num_ctx
        self.keep_alive = keep_alive
        self._template: str | None = None

    @staticmethod
    def model_entries(data: Any) -> list[dict[str, Any]]:
        entries = data.get("models") if isinstance(data, dict) else None
        return [{"id": e.get("name"), **e} for e in entries or [] if isinstance(e, dict)]

    def has_model(self, ids: list[str]) -> bool:
        """`qwen3` is `qwen3:latest` to Ollama."""
        return ollama_name(self.spec.model) in {ollama_name(i) for i in ids}

    def request_body(self, request: ChatRequest) -> dict[str, Any]:
        options: dict[str, Any] = {"num_predict": request.max_tokens}
        for name in ("temperature", "top_p", "seed"):
            if getattr(request, name) is not None:
                options[name] = getattr(request, name)
        if self.num_ctx is not None:
            options["num_ctx"] = self.num_ctx
        body: dict[str, Any] = {
            "model": self.spec.model,
            "messages": to_ollama_messages(request.messages),
            "stream": False,
            "options": options,
        }
        if request.tools:
            body["tools"] = request.tools
        if request.reasoning is not None:
            body["think"] = request.reasoning
        if request.json_schema is not None:
            body["format"] = request.json_schema
        if self.keep_alive is not None:
            body["keep_alive"] = self.keep_alive
        body.update(self.extra_body)
        return body

    def parse_reply(self, data: Any) -> ChatResponse:
        return parse_ollama_chat(data)

    def fingerprint(self) -> dict[str, Any]:
        name = ollama_name(self.spec.model)
        entry = next((m for m in self.models() if m.get("id") in (self.spec.model, name)), None)
        return {
            "runtime": f"ollama {self.call('GET', '/api/version').get('version')}",
            "base_url": self.base_url,
            "model": self.spec.model,
            "digest": (entry or {}).get("digest"),
            "quantization": ((entry or {}).get("details") or {}).get("quantization_level"),
            "size_bytes": (entry or {}).get("size"),
            "num_ctx": self.num_ctx,
            "chat_template_sha256": self._template_sha256(),
        }

    def _template_sha256(self) -> str | None:
        """The chat template decides tool calling; /api/show gives it (read once, as it changes only with
        the model)."""
        if self._template is None:
            response = self.send("POST", "/api/show", CHECK_TIMEOUT_S, json={"model": self.spec.model})
            data = self.json_of(response) if response.status_code == 200 else {}
            template = data.get("template") if isinstance(data, dict) else None
            self._template = hashlib.sha256(template.encode()).hexdigest() if template else ""
        return self._template or None


class OllamaHost(Wire):
    """The lifecycle side of an Ollama server (lifecycle.ManagedHost)."""

    reserved_fraction: float | None = None
    exact_context = True  # each chat names its num_ctx; another one reloads the model (server/sched.go)

    def __init__(self, base_url: str = DEFAULT_URL, *, unload_timeout_s: float = 60.0, poll_s: float = 0.5):
        super().__init__(root_url(base_url))
        self.name = f"ollama@{self.base_url}"
        self.unload_timeout_s = unload_timeout_s
        self.poll_s = poll_s

    def tags(self) -> list[dict[str, Any]]:
        return [m for m in self.call("GET", "/api/tags").get("models") or [] if isinstance(m, dict)]

    def available_models(self) -> list[str]:
        return [str(m.get("name")) for m in self.tags()]

    def loaded_models(self) -> list[LoadedModel]:
        return [
            LoadedModel(
                name=str(m.get("name")),
                size_bytes=m.get("size"),
                vram_bytes=m.get("size_vram"),
                context=m.get("context_length"),
            )
            for m in self.call("GET", "/api/ps").get("models") or []
        ]

    def model_metadata(self, model: str) -> ModelMetadata:
        """From /api/show's `model_info` (GGUF header keys) plus the size and digest in /api/tags."""
        show = self.call("POST", "/api/show", json={"model": model})
        info = show.get("model_info") or {}
        arch = info.get("general.architecture")

        def key(suffix: str) -> Any:
            return info.get(f"{arch}.{suffix}")

        heads = key("attention.head_count")
        embedding = key("embedding_length")
        head_dim = key("attention.key_length") or (embedding // heads if embedding and heads else 0)
        kv_heads = key("attention.head_count_kv") or heads or 0
        tag = next((t for t in self.tags() if t.get("name") in (model, ollama_name(model))), {})
        return ModelMetadata(
            name=model,
            architecture=arch,
            layers=int(key("block_count") or 0),
            kv_heads=tuple(kv_heads) if isinstance(kv_heads, list) else int(kv_heads),
            head_dim_k=int(head_dim),
            head_dim_v=int(key("attention.value_length") or head_dim),
            context_max=key("context_length"),
            weights_bytes=int(tag.get("size") or 0),
            quantization=(show.get("details") or {}).get("quantization_level"),
            digest=tag.get("digest"),
            embedding_length=embedding,
            head_count=heads if isinstance(heads, int) else None,
            vocab_size=info.get(f"{arch}.vocab_size"),
        )

    def load(self, model: str, context: int) -> None:
        """An empty /api/generate loads the model with that context and keeps it until unloaded; /api/ps
        must then show that context, since every chat sends it and a mismatch would reload the model."""
        body = {"model": model, "keep_alive": -1, "options": {"num_ctx": context}}
        self.call("POST", "/api/generate", LOAD_TIMEOUT_S, json=body)
        loaded = next((m for m in self.loaded_models() if m.name in (model, ollama_name(model))), None)
        if loaded is not None and loaded.context and loaded.context != context:
            raise BackendError(
                f"ollama at {self.base_url} loaded {model} at context {loaded.context}, not the {context} "
                f"asked (the model's limit or OLLAMA_CONTEXT_LENGTH): set [guard] context = {loaded.context}"
            )

    def unload(self, model: str) -> None:
        """`keep_alive: 0`, then wait until /api/ps no longer lists it (bounded: a hang is reported)."""
        self.call("POST", "/api/generate", json={"model": model, "keep_alive": 0})
        wait_until(
            lambda: all(m.name not in (model, ollama_name(model)) for m in self.loaded_models()),
            timeout_s=self.unload_timeout_s,
            interval_s=self.poll_s,
            failure=(
                f"ollama at {self.base_url} still lists {model} in /api/ps {self.unload_timeout_s:g}s after "
                "keep_alive:0 (a runner stuck 'Stopping…', ollama#7606): restart ollama to free the memory"
            ),
        )

    def version(self) -> str:
        return str(self.call("GET", "/api/version").get("version"))
