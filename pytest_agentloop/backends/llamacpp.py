"""llama.cpp's `llama-server`: the OpenAI dialect plus its own switches and `/props`.

Thinking is switched through the chat template (`chat_template_kwargs.enable_thinking`), which is
what Qwen3-style templates read; `reasoning_format: deepseek` asks the server to split the thinking
into `reasoning_content` instead of leaving it in the content. In single-model mode the server
answers to any `model` name, so `/v1/models` cannot be used to validate it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from pytest_agentloop.backends.base import BackendError, InfraError
from pytest_agentloop.backends.openai import CHECK_TIMEOUT_S, OpenAIBackend, root_url


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
