"""An LM Studio server on loopback as lmstudio-ai/docs describe it, JIT loading and idle TTL included.

- `GET /api/v1/models` (>= 0.4): key, architecture, quantization {name}, size_bytes,
  max_context_length, loaded_instances[{id, config.context_length}] (1_developer/2_rest/list.md);
  `GET /api/v0/models`: id, arch, quantization, state, max_context_length. `api_v1=False` is a
  0.3.x server, which answers 404 on /api/v1.
- `POST /api/v1/models/load {model, context_length}` loads an instance with no idle TTL, as
  `lms load` does; `POST /api/v1/models/unload {instance_id}` (load.md, unload.md).
- JIT loading (0_core/ttl-and-auto-evict.md, on by default): a chat naming a model that is not
  loaded loads it at its default context (4096 here) with an idle TTL of 60 minutes, or the
  request's `ttl`; auto-evict keeps at most one JIT-loaded model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.support.openai_reply import Script, completion
from tests.support.runtime_server import Answer, RuntimeServer
from tests.support.scripted_server import BEHAVIOURS, Edits

JIT_CONTEXT = 4096
JIT_TTL_S = 3600


@dataclass
class Instance:
    id: str
    context: int
    jit: bool
    ttl_s: int | None
    chats: int = 0


class LMStudioEmulator(RuntimeServer):
    name = "lmstudio-emulator"

    def __init__(
        self,
        models: dict[str, int],
        *,
        api_v1: bool = True,
        edits: Edits = (),
        expire_after_chats: int | None = None,
    ) -> None:
        """`models`: key -> size in bytes. `expire_after_chats`: once an instance has served that many
        chats, the next listing finds it gone: its idle TTL ran out (or a person unloaded it) while the
        harness was between attempts, the only time a run leaves a model idle."""
        super().__init__()
        self.sizes = models
        self.api_v1 = api_v1
        self.instances: dict[str, Instance] = {}
        self.loads: list[tuple[str, str, int]] = []  # ("rest" | "jit", model, context)
        self.expire_after_chats = expire_after_chats
        self.script = Script(list(edits))

    def _idle_expiry(self) -> None:
        if self.expire_after_chats:
            for key in [k for k, i in self.instances.items() if i.chats >= self.expire_after_chats]:
                del self.instances[key]

    def _load(self, model: str, context: int, jit: bool, ttl_s: int | None) -> Instance:
        if jit:  # auto-evict: at most one JIT-loaded model
            for key in [k for k, i in self.instances.items() if i.jit]:
                del self.instances[key]
        self.instances[model] = Instance(model, context, jit, ttl_s)
        self.loads.append(("jit" if jit else "rest", model, context))
        return self.instances[model]

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        body = body or {}
        if path.startswith("/api/v1/") and not self.api_v1:
            return 404, {"error": "Unexpected endpoint or method."}
        if method == "GET" and path in ("/api/v1/models", "/api/v0/models"):
            self._idle_expiry()
        if (method, path) == ("GET", "/api/v1/models"):
            return 200, {"models": [self._v1(k) for k in self.sizes]}
        if (method, path) == ("GET", "/api/v0/models"):
            return 200, {"object": "list", "data": [self._v0(k) for k in self.sizes]}
        if (method, path) == ("GET", "/v1/models"):
            return 200, {
                "object": "list",
                "data": [{"id": k, "object": "model", "owned_by": "organization_owner"} for k in self.sizes],
            }
        if (method, path) == ("POST", "/api/v1/models/load"):
            if body.get("model") not in self.sizes:
                return 404, {"error": f"model {body.get('model')} not found"}
            instance = self._load(body["model"], int(body.get("context_length") or JIT_CONTEXT), False, None)
            return 200, {"instance_id": instance.id, "load_time_seconds": 1.2, "status": "loaded"}
        if (method, path) == ("POST", "/api/v1/models/unload"):
            self.instances.pop(str(body.get("instance_id")), None)
            return 200, {"instance_id": body.get("instance_id")}
        if (method, path) == ("POST", "/v1/chat/completions"):
            model = str(body.get("model"))
            if model not in self.sizes:
                return 404, {"error": f"model '{model}' not found"}
            if model not in self.instances:
                self._load(model, JIT_CONTEXT, True, int(body.get("ttl") or JIT_TTL_S))
            self.instances[model].chats += 1
            return 200, completion(BEHAVIOURS["solve"], self.script, body)
        return 404, {"error": "Unexpected endpoint or method."}

    def _v1(self, key: str) -> dict[str, Any]:
        instance = self.instances.get(key)
        return {
            "type": "llm",
            "publisher": key.split("/")[0],
            "key": key,
            "architecture": "qwen3",
            "quantization": {"name": "Q4_K_M", "bits_per_weight": 4.8},
            "size_bytes": self.sizes[key],
            "max_context_length": 40960,
            "format": "gguf",
            "loaded_instances": [{"id": instance.id, "config": {"context_length": instance.context}}]
            if instance
            else [],
        }

    def _v0(self, key: str) -> dict[str, Any]:
        return {
            "id": key,
            "object": "model",
            "type": "llm",
            "arch": "qwen3",
            "quantization": "Q4_K_M",
            "compatibility_type": "gguf",
            "state": "loaded" if key in self.instances else "not-loaded",
            "max_context_length": 40960,
        }
