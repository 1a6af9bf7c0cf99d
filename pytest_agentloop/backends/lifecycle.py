"""The model-lifecycle side of a runtime: what is on the host, what is loaded, load and unload.

Chatting (`base.Backend`) and managing residency are separate jobs: `hosts.HostManager` drives a
`ManagedHost` to keep one model resident at a time (unload, verify, guard, load, verify), and the
memory guard reads `ModelMetadata` to size a model before anything is loaded. Each runtime adapter
implements this protocol next to its `Backend`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class LoadedModel:
    """One model resident on the host, as the runtime reports it (sizes in bytes, when it says)."""

    name: str
    size_bytes: int | None = None  # total resident (Ollama `size`, LM Studio `size_bytes`, RSS)
    vram_bytes: int | None = None  # the part on the GPU, when the runtime splits it
    context: int | None = None  # the context it was loaded with


@dataclass(frozen=True)
class ModelMetadata:
    """What the memory guard needs to size a model: the GGUF header's shape, not its tensors.

    `kv_heads` is a tuple when the model varies it per layer (e.g. hybrid or SWA models); the
    `embedding_length`, `head_count` and `vocab_size` feed the compute-graph approximation and may
    be unknown (None) for runtimes that do not report them.
    """

    name: str
    architecture: str | None
    layers: int
    kv_heads: int | tuple[int, ...]
    head_dim_k: int
    head_dim_v: int
    context_max: int | None
    weights_bytes: int
    quantization: str | None = None
    digest: str | None = None
    embedding_length: int | None = None
    head_count: int | None = None
    vocab_size: int | None = None

    def kv_heads_per_layer(self) -> tuple[int, ...]:
        """One entry per layer whether the header stored a scalar or an array."""
        if isinstance(self.kv_heads, int):
            return (self.kv_heads,) * self.layers
        return self.kv_heads


@runtime_checkable
class ManagedHost(Protocol):
    """A runtime on one machine whose resident models the harness may change.

    `name` identifies the host for leases (e.g. `ollama@http://127.0.0.1:11434`): every process that
    uses the same name shares one lock. `reserved_fraction` is for runtimes that claim a fixed share
    of device memory whatever the model (vLLM's `--gpu-memory-utilization`); None elsewhere.
    """

    @property
    def name(self) -> str: ...

    @property
    def reserved_fraction(self) -> float | None: ...

    def available_models(self) -> list[str]: ...

    def loaded_models(self) -> list[LoadedModel]: ...

    def model_metadata(self, model: str) -> ModelMetadata: ...

    def load(self, model: str, context: int) -> None:
        """Ask the runtime to load; may return before it is resident (the manager verifies)."""
        ...

    def unload(self, model: str) -> None:
        """Ask the runtime to unload; may return before memory is freed (the manager verifies)."""
        ...

    def version(self) -> str: ...
