"""A vLLM server on loopback with sleep mode, as vllm-project/vllm docs/features/sleep_mode.md says,
and the dcgm-exporter of its GPU beside it.

- One model per process; `/v1/models` lists it with `max_model_len`; `/version`.
- With VLLM_SERVER_DEV_MODE=1 and --enable-sleep-mode: `POST /sleep?level=1` moves the weights to
  CPU RAM and drops the KV cache, `POST /wake_up` takes `gpu_memory_utilization` of the device
  back, `GET /is_sleeping`. Sleeping still holds a CUDA context (sleep frees only part, #32714).
- `/dcgm` is that GPU's dcgm-exporter: DCGM_FI_DEV_FB_FREE/USED in MiB, so the guard reads the
  box's own framebuffer.
"""

from __future__ import annotations

from typing import Any

from pytest_agentloop.memory import GiB, MiB
from tests.support.openai_reply import Script, completion
from tests.support.runtime_server import Answer, RuntimeServer
from tests.support.scripted_server import BEHAVIOURS, Edits


class VLLMEmulator(RuntimeServer):
    name = "vllm-emulator"

    def __init__(
        self,
        model: str,
        *,
        gpu_memory_utilization: float = 0.9,
        device_bytes: int = 80 * GiB,
        other_tenants_bytes: int = 1 * GiB,
        sleeping: bool = True,
        edits: Edits = (),
    ) -> None:
        super().__init__()
        self.model = model
        self.fraction = gpu_memory_utilization
        self.device_bytes = device_bytes
        self.other_tenants_bytes = other_tenants_bytes
        self.sleeping = sleeping
        self.residue_bytes = int(1.5 * GiB)  # CUDA context and allocator pools kept while asleep
        self.wakes = 0
        self.script = Script(list(edits))

    def used_bytes(self) -> int:
        own = self.residue_bytes if self.sleeping else int(self.fraction * self.device_bytes)
        return own + self.other_tenants_bytes

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> Answer:
        if (method, path) == ("GET", "/v1/models"):
            return 200, {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "max_model_len": 32768}],
            }
        if (method, path) == ("GET", "/version"):
            return 200, {"version": "0.12.0"}
        if (method, path) == ("GET", "/is_sleeping"):
            return 200, {"is_sleeping": self.sleeping}
        if (method, path) == ("POST", "/sleep"):
            self.sleeping = True
            return 200, None
        if (method, path) == ("POST", "/wake_up"):
            if self.device_bytes - self.used_bytes() + self.residue_bytes < self.fraction * self.device_bytes:
                return 500, {"error": "CUDA out of memory while waking up"}  # vllm#47654
            self.sleeping, self.wakes = False, self.wakes + 1
            return 200, None
        if (method, path) == ("GET", "/dcgm"):
            free, used = (self.device_bytes - self.used_bytes()) // MiB, self.used_bytes() // MiB
            labels = f'gpu="0",UUID="GPU-0",device="nvidia0",modelName="NVIDIA H100",Hostname="{self.name}"'
            return 200, f"DCGM_FI_DEV_FB_FREE{{{labels}}} {free}\nDCGM_FI_DEV_FB_USED{{{labels}}} {used}\n"
        if (method, path) == ("POST", "/v1/chat/completions"):
            if self.sleeping:
                return 503, {"error": "the engine is sleeping"}
            return 200, completion(BEHAVIOURS["solve"], self.script, body)
        return 404, {"detail": "Not Found"}
