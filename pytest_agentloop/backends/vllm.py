"""vLLM: one model per server process, chat over /v1, memory freed only through sleep mode.

Constrained decoding moved from `guided_json` to `structured_outputs: {"json": ...}` in vLLM
0.12 (the old field was removed), so the request follows the server's /version. vLLM reserves
`--gpu-memory-utilization` of the device whatever the model, so the host reports that fraction and
not a model shape. Unloading means `POST /sleep?level=1` (weights to CPU RAM, KV dropped), which
exists only when the server runs with VLLM_SERVER_DEV_MODE=1 and --enable-sleep-mode.
"""

from __future__ import annotations

import re
from typing import Any

from pytest_agentloop.backends.base import BackendError, ModelSpec
from pytest_agentloop.backends.lifecycle import LoadedModel, ModelMetadata
from pytest_agentloop.backends.openai import (
    CHECK_TIMEOUT_S,
    OpenAIBackend,
    Wire,
    root_url,
    v1_url,
    wait_until,
)
from pytest_agentloop.memory import MetadataError

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
STRUCTURED_OUTPUTS_SINCE = (0, 12)


def version_tuple(version: str) -> tuple[int, ...]:
    """`0.11.2` or `0.12.0rc1.dev3+g1234` -> (0, 11, 2) / (0, 12, 0): enough to compare releases."""
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    return tuple(int(part) for part in found.groups() if part is not None) if found else ()


class VLLMBackend(OpenAIBackend):
    """A model served by `vllm serve` (chat template switches, version-aware structured outputs)."""

    def __init__(self, spec: ModelSpec, base_url: str = v1_url(DEFAULT_URL), **kwargs: Any) -> None:
        super().__init__(spec, base_url, **kwargs)
        self._version: str | None = None

    def server_version(self) -> str:
        if self._version is None:
            self._version = str(self.call("GET", f"{root_url(self.base_url)}/version").get("version"))
        return self._version

    def reasoning_fields(self, on: bool) -> dict[str, Any]:
        return {"chat_template_kwargs": {"enable_thinking": on}}

    def schema_fields(self, schema: dict[str, Any]) -> dict[str, Any]:
        if version_tuple(self.server_version()) >= STRUCTURED_OUTPUTS_SINCE:
            return {"structured_outputs": {"json": schema}}
        return {"guided_json": schema}

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "runtime": f"vllm {self.server_version()}"}


class VLLMHost(Wire):
    """The lifecycle side of one vLLM server (lifecycle.ManagedHost): sleep and wake, nothing else."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION,
        api_key: str | None = None,
        wait_timeout_s: float = 120.0,
        poll_s: float = 0.5,
    ) -> None:
        super().__init__(root_url(base_url), api_key=api_key)
        self.name = f"vllm@{self.base_url}"
        self.reserved_fraction: float | None = gpu_memory_utilization
        self.wait_timeout_s = wait_timeout_s
        self.poll_s = poll_s

    def available_models(self) -> list[str]:
        return [str(m.get("id")) for m in self.call("GET", "/v1/models").get("data") or []]

    def sleeping(self) -> bool:
        """GET /is_sleeping; a 404 means the server has no sleep mode and the model is always resident."""
        response = self.send("GET", "/is_sleeping", CHECK_TIMEOUT_S)
        if response.status_code == 404:
            return False
        return bool(self.checked(response).get("is_sleeping"))

    def loaded_models(self) -> list[LoadedModel]:
        if self.sleeping():
            return []
        return [LoadedModel(name=m, context=self._max_model_len(m)) for m in self.available_models()]

    def _max_model_len(self, model: str) -> int | None:
        entries = self.call("GET", "/v1/models").get("data") or []
        return next((e.get("max_model_len") for e in entries if e.get("id") == model), None)

    def model_metadata(self, model: str) -> ModelMetadata:
        raise MetadataError(
            f"vllm at {self.base_url} reserves a fixed share of GPU memory (reserved_fraction="
            f"{self.reserved_fraction}) whatever {model} is; size it by that fraction, not by its shape"
        )

    def _served(self, model: str) -> None:
        served = self.available_models()
        if model not in served:
            raise BackendError(
                f"vllm at {self.base_url} serves {', '.join(served) or 'nothing'}, not {model}: "
                f"vLLM runs one model per server; start `vllm serve {model}` "
                "and pass its URL with --agent-host"
            )

    def load(self, model: str, context: int) -> None:
        """Wake a sleeping server; the context is fixed at startup (--max-model-len) and not changed."""
        self._served(model)
        if self.sleeping():
            self.call("POST", "/wake_up", self.wait_timeout_s)
            wait_until(
                lambda: not self.sleeping(),
                timeout_s=self.wait_timeout_s,
                interval_s=self.poll_s,
                failure=f"vllm at {self.base_url} still sleeping {self.wait_timeout_s:g}s after /wake_up",
            )

    def unload(self, model: str) -> None:
        """Sleep at level 1: weights move to CPU RAM, the KV cache is dropped, the process stays up."""
        self._served(model)
        if self.send("GET", "/is_sleeping", CHECK_TIMEOUT_S).status_code == 404:
            raise BackendError(
                f"vllm at {self.base_url} has no sleep mode, so {model} cannot be unloaded: start it with "
                "VLLM_SERVER_DEV_MODE=1 and --enable-sleep-mode, or run one model per vLLM server"
            )
        self.call("POST", "/sleep?level=1", self.wait_timeout_s)
        wait_until(
            self.sleeping,
            timeout_s=self.wait_timeout_s,
            interval_s=self.poll_s,
            failure=f"vllm at {self.base_url} not sleeping {self.wait_timeout_s:g}s after /sleep?level=1",
        )

    def version(self) -> str:
        return str(self.call("GET", "/version").get("version"))
