"""llama.cpp's `llama-server`: the OpenAI dialect plus its own switches, `/props`, and router mode.

Thinking is switched through the chat template (`chat_template_kwargs.enable_thinking`), which is
what Qwen3-style templates read; `reasoning_format: deepseek` asks the server to split the thinking
into `reasoning_content` instead of leaving it in the content. In single-model mode the server
answers to any `model` name, so `/v1/models` cannot be used to validate it, and its one model can
be neither swapped nor unloaded; router mode (started without -m) lists models with a status and
loads/unloads them on request.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from pytest_agentloop.backends.base import BackendError, InfraError
from pytest_agentloop.backends.lifecycle import LoadedModel, ModelMetadata
from pytest_agentloop.backends.openai import CHECK_TIMEOUT_S, OpenAIBackend, Wire, root_url, wait_until
from pytest_agentloop.memory import MetadataError, metadata_from_gguf, with_name

DEFAULT_URL = "http://127.0.0.1:8080"
LOAD_TIMEOUT_S = 600.0


def summarize_props(props: dict[str, Any]) -> dict[str, Any]:
    """The parts of `/props` that change what is evaluated (the template decides tool calling)."""
    settings = props.get("default_generation_settings") or {}
    template = props.get("chat_template")
    return {
        "build_info": props.get("build_info"),
        "model_path": props.get("model_path"),
        "model_alias": props.get("model_alias"),
        "n_ctx": settings.get("n_ctx"),
        "total_slots": props.get("total_slots"),
        "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest() if template else None,
    }


class LlamaCppBackend(OpenAIBackend):
    """A model served by llama-server (also the chat side of the embedded backend)."""

    lists_model_names = False

    def reasoning_fields(self, on: bool) -> dict[str, Any]:
        return {"chat_template_kwargs": {"enable_thinking": on}, "reasoning_format": "deepseek"}

    def props(self) -> dict[str, Any]:
        """GET /props: the server's settings, model path and chat template."""
        url = f"{root_url(self.base_url)}/props"
        response = self.send("GET", url, CHECK_TIMEOUT_S)
        self.raise_for_client_error(response, listing=True)
        data = self.json_of(response)
        if not isinstance(data, dict):
            raise InfraError(f"GET {url}: expected an object, got {type(data).__name__}")
        return data

    def fingerprint(self) -> dict[str, Any]:
        try:
            props = summarize_props(self.props())
        except (InfraError, BackendError) as exc:
            props = {"error": str(exc)}
        return {**super().fingerprint(), "runtime": "llama.cpp", "props": props}


_QUANT_SUFFIX = re.compile(
    r"[-._](?:i?q\d\w*|[bf]16|f32|fp16|mxfp4|ud(?:-\w+)?|\d{5}-of-\d{5})$", re.IGNORECASE
)


def model_key(name: str) -> str:
    """`models/Qwen3-8B-Q4_K_M.gguf` -> `qwen3-8b`: what a user types for a served file."""
    key = re.sub(r"\.gguf$", "", name.replace("\\", "/").rsplit("/", 1)[-1], flags=re.IGNORECASE)
    while _QUANT_SUFFIX.search(key):
        key = _QUANT_SUFFIX.sub("", key)
    return key.lower()


def status_of(entry: dict[str, Any]) -> str:
    status = entry.get("status")
    return str(status.get("value")) if isinstance(status, dict) else ""


class LlamaCppHost(Wire):
    """The lifecycle side of a llama-server (lifecycle.ManagedHost), in router or single-model mode."""

    reserved_fraction: float | None = None

    def __init__(
        self, base_url: str = DEFAULT_URL, *, wait_timeout_s: float = LOAD_TIMEOUT_S, poll_s: float = 0.5
    ) -> None:
        super().__init__(root_url(base_url))
        self.name = f"llamacpp@{self.base_url}"
        self.wait_timeout_s = wait_timeout_s
        self.poll_s = poll_s

    def entries(self) -> list[dict[str, Any]]:
        """`GET /models`: in router mode each entry has a `status`; in single-model mode none does."""
        data = self.call("GET", "/models") or {}
        return [e for e in data.get("data") or [] if isinstance(e, dict)]

    def router(self) -> bool:
        return any("status" in e for e in self.entries())

    def props(self) -> dict[str, Any]:
        return dict(self.call("GET", "/props") or {})

    def available_models(self) -> list[str]:
        return [str(e.get("id")) for e in self.entries()]

    def loaded_models(self) -> list[LoadedModel]:
        entries = self.entries()
        if any("status" in e for e in entries):
            return [LoadedModel(name=str(e.get("id"))) for e in entries if status_of(e) == "loaded"]
        props = self.props()
        if props.get("is_sleeping"):  # --sleep-idle-seconds: weights and KV released, process kept
            return []
        context = (props.get("default_generation_settings") or {}).get("n_ctx")
        return [
            LoadedModel(name=str(e.get("id")), size_bytes=(e.get("meta") or {}).get("size"), context=context)
            for e in entries
        ]

    def model_metadata(self, model: str) -> ModelMetadata:
        """Read from the GGUF itself when the server's file is on this machine (loopback servers)."""
        entry = next((e for e in self.entries() if e.get("id") == model), None)
        routed = entry is not None and "status" in entry
        path = (entry or {}).get("path") if routed else self.props().get("model_path")
        if not path or not Path(path).is_file():
            raise MetadataError(
                f"llamacpp at {self.base_url}: the GGUF of {model} ({path or 'path not reported'}) is not "
                "readable here; run the harness on the server's machine or size the model by its file"
            )
        return with_name(metadata_from_gguf(path), model)

    def resolve(self, model: str) -> str:
        """The served name of `model`. A single-model server is matched by its alias or file stem
        (`qwen3-8b` for `Qwen3-8B-Q4_K_M.gguf`; `default` for whatever it serves); router names are exact."""
        entries = self.entries()
        ids = [str(e.get("id")) for e in entries]
        if model in ids or any("status" in e for e in entries):
            return model
        matches = [i for i in ids if model == "default" or model_key(i) == model_key(model)]
        if len(matches) == 1:
            return matches[0]
        served = ", ".join(ids) or "no model"
        raise BackendError(
            f"llama-server at {self.base_url} serves {served}, not {model}: use --agent-model=llamacpp:"
            f"{ids[0] if ids else 'NAME'} or start it with --alias {model}"
        )

    def _single_model_error(self, model: str, action: str) -> BackendError:
        served = ", ".join(self.available_models()) or "one model"
        return BackendError(
            f"llama-server at {self.base_url} serves {served} in single-model mode and cannot {action} "
            f"{model}: start it in router mode (llama-server --models-dir DIR, no -m) to let the harness "
            "swap models"
        )

    def load(self, model: str, context: int) -> None:
        """Router: POST /models/load and wait for `loaded`; the context is the router's -c, not per load."""
        if not self.router():
            if model in self.available_models():
                return
            raise self._single_model_error(model, "load")
        self.call("POST", "/models/load", self.wait_timeout_s, json={"model": model})
        self._wait_for(model, "loaded")

    def unload(self, model: str) -> None:
        if not self.router():
            raise self._single_model_error(model, "unload")
        self.call("POST", "/models/unload", json={"model": model})
        self._wait_for(model, "unloaded")

    def _wait_for(self, model: str, wanted: str) -> None:
        def reached() -> bool:
            entry = next((e for e in self.entries() if e.get("id") == model), {})
            status = entry.get("status") or {}
            if wanted == "loaded" and status.get("failed"):
                raise InfraError(
                    f"llama-server at {self.base_url} failed to load {model} (exit code "
                    f"{status.get('exit_code')}, args {' '.join(map(str, status.get('args') or []))}): "
                    "see the server log"
                )
            return status_of(entry) == wanted

        wait_until(
            reached,
            timeout_s=self.wait_timeout_s,
            interval_s=self.poll_s,
            failure=f"llama-server at {self.base_url}: {model} not {wanted} after {self.wait_timeout_s:g}s",
        )

    def version(self) -> str:
        return f"llama.cpp {self.props().get('build_info')}"
