"""LM Studio: chat over its OpenAI-compatible /v1, residency over its REST API.

`/api/v1/models` (LM Studio >= 0.4) lists every model with its loaded instances; older servers
only have `/api/v0/models`, so a 404 falls back to it. Unloading takes an *instance id*, not a
model key, and LM Studio may answer before the memory is released, so unload polls the listing.
"""

from __future__ import annotations

from typing import Any

from pytest_agentloop.backends.base import BackendError, InfraError
from pytest_agentloop.backends.lifecycle import LoadedModel, ModelMetadata
from pytest_agentloop.backends.openai import CHECK_TIMEOUT_S, OpenAIBackend, Wire, root_url, wait_until
from pytest_agentloop.memory import MetadataError

DEFAULT_URL = "http://127.0.0.1:1234"
LOAD_TIMEOUT_S = 600.0
JIT_TTL_S = 86400  # a JIT-loaded model's idle TTL: longer than any run (the default is 60 minutes)


class LMStudioBackend(OpenAIBackend):
    """A model on LM Studio's /v1/chat/completions (JIT loading answers for any downloaded model)."""

    def fingerprint(self) -> dict[str, Any]:
        """The OpenAI listing names the model only; the REST listing adds what compare and the card need."""
        facts = {**super().fingerprint(), "runtime": "lmstudio"}
        host = LMStudioHost(self.base_url, api_key=self.api_key)
        try:
            entry = next((m for m in host.models() if m["key"] == self.spec.model), None)
        except (InfraError, BackendError):
            entry = None
        finally:
            host.close()
        if entry is not None:
            facts.update({key: entry[key] for key in ("architecture", "quantization", "size_bytes")})
        return facts


def normalize(entry: dict[str, Any]) -> dict[str, Any]:
    """A v1 or v0 model entry -> {key, size_bytes, quantization, architecture, context_max, instances}."""
    if "key" in entry:  # /api/v1/models
        quantization = entry.get("quantization") or {}
        instances = [
            (str(i.get("id")), (i.get("config") or {}).get("context_length"))
            for i in entry.get("loaded_instances") or []
        ]
        return {
            "key": str(entry["key"]),
            "size_bytes": entry.get("size_bytes"),
            "quantization": quantization.get("name") if isinstance(quantization, dict) else quantization,
            "architecture": entry.get("architecture"),
            "context_max": entry.get("max_context_length"),
            "instances": instances,
        }
    loaded = entry.get("state") == "loaded"  # /api/v0/models: one implicit instance named by the id
    return {
        "key": str(entry.get("id")),
        "size_bytes": None,
        "quantization": entry.get("quantization"),
        "architecture": entry.get("arch"),
        "context_max": entry.get("max_context_length"),
        "instances": [(str(entry.get("id")), None)] if loaded else [],
    }


class LMStudioHost(Wire):
    """The lifecycle side of an LM Studio server (lifecycle.ManagedHost)."""

    reserved_fraction: float | None = None

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        api_key: str | None = None,
        unload_timeout_s: float = 60.0,
        poll_s: float = 0.5,
    ) -> None:
        super().__init__(root_url(base_url), api_key=api_key)
        self.name = f"lmstudio@{self.base_url}"
        self.unload_timeout_s = unload_timeout_s
        self.poll_s = poll_s

    def models(self) -> list[dict[str, Any]]:
        response = self.send("GET", "/api/v1/models", CHECK_TIMEOUT_S)
        if response.status_code == 404:  # LM Studio < 0.4
            entries = self.call("GET", "/api/v0/models").get("data") or []
        else:
            entries = self.checked(response).get("models") or []
        return [normalize(e) for e in entries if isinstance(e, dict) and e.get("type", "llm") == "llm"]

    def available_models(self) -> list[str]:
        return [m["key"] for m in self.models()]

    def loaded_models(self) -> list[LoadedModel]:
        return [
            LoadedModel(name=m["key"], size_bytes=m["size_bytes"], context=context)
            for m in self.models()
            for _, context in m["instances"]
        ]

    def model_metadata(self, model: str) -> ModelMetadata:
        """LM Studio's listing gives architecture, quantization, max context and (api/v1) the size, but
        not the layer shape the KV term needs: the guard sizes such a model under a stated assumption."""
        entry = next((m for m in self.models() if m["key"] == model), {})
        facts = ", ".join(
            f"{label} {entry[key]}"
            for key, label in (
                ("architecture", "arch"),
                ("quantization", "quant"),
                ("context_max", "max context"),
            )
            if entry.get(key)
        )
        raise MetadataError(
            f"lmstudio reports no layer shape for {model}" + (f" ({facts})" if facts else ""),
            weights_bytes=entry.get("size_bytes"),
        )

    def load(self, model: str, context: int) -> None:
        """REST load (no idle TTL, as `lms load`). LM Studio < 0.4 has no load endpoint: there the model
        is loaded the way its first chat would (JIT), explicitly, with a day's TTL so it stays for the run;
        it then runs at its default context, which only the app or `lms load --context-length` can set."""
        body = {"model": model, "context_length": context, "echo_load_config": True}
        response = self.send("POST", "/api/v1/models/load", LOAD_TIMEOUT_S, json=body)
        if response.status_code != 404:
            self.checked(response)
            return
        jit = {
            "model": model,
            "messages": [{"role": "user", "content": "ok"}],
            "max_tokens": 1,
            "ttl": JIT_TTL_S,
        }
        self.call("POST", "/v1/chat/completions", LOAD_TIMEOUT_S, json=jit)

    def unload(self, model: str) -> None:
        """Unload every instance of `model`, then wait until the listing shows none (bounded)."""
        for entry in self.models():
            if entry["key"] == model:
                for instance_id, _ in entry["instances"]:
                    self.call("POST", "/api/v1/models/unload", json={"instance_id": instance_id})
        wait_until(
            lambda: all(m.name != model for m in self.loaded_models()),
            timeout_s=self.unload_timeout_s,
            interval_s=self.poll_s,
            failure=(
                f"lmstudio at {self.base_url} still lists {model} as loaded {self.unload_timeout_s:g}s "
                f"after /api/v1/models/unload: unload it in the app or with `lms unload --all`"
            ),
        )

    def version(self) -> str:
        """LM Studio has no version endpoint; the API generation in use is what the host can tell."""
        response = self.send("GET", "/api/v1/models", CHECK_TIMEOUT_S)
        return "lmstudio (REST api/v1)" if response.status_code != 404 else "lmstudio (REST api/v0)"
