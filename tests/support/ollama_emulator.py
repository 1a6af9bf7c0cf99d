"""An Ollama server on loopback that behaves as its docs and source say, quirks included.

- `POST /api/generate` or `/api/chat` with no prompt loads a model at `options.num_ctx` (docs/api.md
  "Load a model"); `keep_alive: 0` unloads it ("Unload a model").
- A chat whose `options.num_ctx` differs from the loaded context, or that sends none, makes the
  scheduler reload the model at the asked context, or at the server default (OLLAMA_CONTEXT_LENGTH,
  4096) when none is asked (server/sched.go, the reload check).
- A prompt longer than the context is cut without an error: the oldest messages after the system
  prompt are dropped until it fits (server/prompt.go chatPrompt), then the runner truncates what
  still does not fit; `prompt_eval_count` is what was evaluated.
- `/api/ps` lists loaded models with `size`, `size_vram` and `context_length`; `/api/tags` names
  models `name:tag`, so `qwen3` is `qwen3:latest`.

Chat replies come from a scripted behaviour (tests/support/scripted_server.py), translated to the
native shape: tool-call arguments as objects, durations in nanoseconds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tests.support.runtime_server import Answer, RuntimeServer, prompt_tokens
from tests.support.scripted_server import BEHAVIOURS, Edits

DEFAULT_CONTEXT = 4096  # OLLAMA_CONTEXT_LENGTH's default in recent releases


@dataclass
class OllamaModel:
    name: str
    size: int = 5_225_388_164
    digest: str = "500a1f067a9f782620b40bee6f7b0c89e17ae61f686b92c24933e4ca4b2b8b41"
    quantization: str = "Q4_K_M"
    layers: int = 36
    kv_heads: int = 8
    heads: int = 32
    embedding: int = 4096
    head_dim: int = 128
    context_max: int = 40960


@dataclass
class Script:
    """What the scripted behaviours read from their `server` argument."""

    edits: list[tuple[str, str]] = field(default_factory=list)
    request_count: int = 0


class OllamaEmulator(RuntimeServer):
    name = "ollama-emulator"

    def __init__(
        self,
        models: list[OllamaModel],
        *,
        behaviour: str = "solve",
        edits: Edits = (),
        address: str = "127.0.0.1",
    ) -> None:
        super().__init__(address)
        self.models = {m.name: m for m in models}
        self.loaded: dict[str, int] = {}  # name -> context
        self.loads: list[tuple[str, int]] = []  # every (re)load, in order: what the guard never saw
        self.truncated: list[tuple[int, int]] = []  # (tokens sent, tokens evaluated) per cut prompt
        self.serving: list[list[str]] = []  # the models loaded at each chat
        self.behaviour = BEHAVIOURS[behaviour]
        self.script = Script(list(edits))

    def _name(self, model: str) -> str | None:
        full = model if ":" in model else f"{model}:latest"
        return full if full in self.models else None

    def _ensure(self, name: str, num_ctx: Any) -> None:
        context = int(num_ctx) if num_ctx else DEFAULT_CONTEXT
        if self.loaded.get(name) != context:
            self.loaded[name] = context
            self.loads.append((name, context))

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        body = body or {}
        if (method, path) == ("GET", "/api/version"):
            return 200, {"version": "0.13.1"}
        if (method, path) == ("GET", "/api/tags"):
            return 200, {"models": [self._tag(m) for m in self.models.values()]}
        if (method, path) == ("GET", "/api/ps"):
            return 200, {"models": [self._ps(n, c) for n, c in self.loaded.items()]}
        if method != "POST":
            return 404, {"error": f"no route {path}"}
        name = self._name(str(body.get("model") or ""))
        if name is None:
            return 404, {"error": f"model '{body.get('model')}' not found"}
        if path == "/api/show":
            return 200, self._show(self.models[name])
        if path not in ("/api/generate", "/api/chat"):
            return 404, {"error": f"no route {path}"}
        if body.get("keep_alive") == 0:
            self.loaded.pop(name, None)
            return 200, {"model": name, "done": True, "done_reason": "unload"}
        self._ensure(name, (body.get("options") or {}).get("num_ctx"))
        if path == "/api/generate" or not body.get("messages"):
            return 200, {"model": name, "done": True, "done_reason": "load"}
        return 200, self._chat(name, body)

    def _chat(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        self.serving.append(sorted(self.loaded))
        context = self.loaded[name]
        kept = fit_messages(list(body["messages"]), body.get("tools"), context)
        sent, evaluated = (
            prompt_tokens(body["messages"], body.get("tools")),
            prompt_tokens(kept, body.get("tools")),
        )
        evaluated = min(evaluated, context)
        if evaluated < sent:
            self.truncated.append((sent, evaluated))
        with self.lock:
            scripted = self.behaviour(
                self.script, {**body, "messages": kept if evaluated < sent else body["messages"]}
            )
            self.script.request_count += 1
        calls = [
            {"function": {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}}
            for c in scripted.get("tool_calls") or []
        ]
        message: dict[str, Any] = {"role": "assistant", "content": scripted.get("content", "")}
        if calls:
            message["tool_calls"] = calls
        return {
            "model": name,
            "message": message,
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": evaluated,
            "prompt_eval_duration": 1_000_000 * evaluated,
            "eval_count": len(json.dumps(message)) // 4 + 1,
            "eval_duration": 20_000_000,
        }

    def _tag(self, m: OllamaModel) -> dict[str, Any]:
        return {
            "name": m.name,
            "model": m.name,
            "size": m.size,
            "digest": m.digest,
            "details": {"format": "gguf", "family": "qwen3", "quantization_level": m.quantization},
        }

    def _ps(self, name: str, context: int) -> dict[str, Any]:
        m = self.models[name]
        kv = 2 * m.layers * context * m.kv_heads * m.head_dim * 2
        return {
            "name": name,
            "model": name,
            "size": m.size + kv,
            "size_vram": m.size + kv,
            "context_length": context,
        }

    def _show(self, m: OllamaModel) -> dict[str, Any]:
        arch = "qwen3"
        return {
            "details": {"quantization_level": m.quantization},
            "model_info": {
                "general.architecture": arch,
                f"{arch}.block_count": m.layers,
                f"{arch}.attention.head_count": m.heads,
                f"{arch}.attention.head_count_kv": m.kv_heads,
                f"{arch}.attention.key_length": m.head_dim,
                f"{arch}.attention.value_length": m.head_dim,
                f"{arch}.embedding_length": m.embedding,
                f"{arch}.context_length": m.context_max,
            },
            "template": "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}",
            "capabilities": ["completion", "tools", "thinking"],
        }


def fit_messages(messages: list[dict[str, Any]], tools: Any, context: int) -> list[dict[str, Any]]:
    """chatPrompt's rule: drop the oldest non-system messages, never the last, until the prompt fits."""
    kept = list(messages)
    while prompt_tokens(kept, tools) > context:
        droppable = [i for i, m in enumerate(kept[:-1]) if m.get("role") != "system"]
        if not droppable:
            break
        del kept[droppable[0]]
    return kept
