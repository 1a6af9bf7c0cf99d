"""Sizing a model before it is loaded, and the fits / doesn't-fit verdict.

Loading a model that does not fit takes the host down with it (OOM, swap storms, a runtime stuck
"Stopping…"), so the guard refuses *before* loading, and refuses "barely fits" too: the estimate is
an approximation and the host has other tenants. Formula (shared/reference/runtime-apis.md §5):
resident ≈ weights + KV + compute graph + fixed overhead.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import psutil  # type: ignore[import-untyped,unused-ignore]

from pytest_agentloop.backends.base import BackendError
from pytest_agentloop.backends.lifecycle import ModelMetadata

MiB = 2**20
GiB = 2**30

KV_BYTES_PER_ELEM = {"f16": 2.0, "q8_0": 1.0, "q4_0": 0.5}

# Fixed overhead of a llama.cpp server process on the CPU beyond its buffers (threads, HTTP server,
# tokenizer, allocator slack). benchmarks/bench_memory.py measured 4-18 MiB beyond weights + KV +
# graph for SmolLM2 at 2k-16k context; 64 MiB leaves room for larger vocabularies and templates.
CPU_OVERHEAD_BYTES = 64 * MiB
# A CUDA context and its kernels, per GPU: Ollama's MinimumMemory() for CUDA (ml/device.go).
CUDA_OVERHEAD_BYTES = 457 * MiB
DEFAULT_UBATCH = 512
DEFAULT_RESERVE_BYTES = 2 * GiB
CONTEXT_STEP = 256  # suggested contexts are rounded down to this


class MetadataError(BackendError):
    """A model whose shape cannot be read (a missing or bad GGUF, a runtime that does not report it).

    `weights_bytes` is the model's size when the runtime reports that much, so the guard can still
    size it under a stated assumption (`assumed_estimate`).
    """

    def __init__(self, message: str, *, weights_bytes: int | None = None) -> None:
        super().__init__(message)
        self.weights_bytes = weights_bytes


def fmt_bytes(n: float) -> str:
    """Human figure for one-line messages: MiB below 10 GiB, GiB above."""
    return f"{n / GiB:.1f} GiB" if abs(n) >= 10 * GiB else f"{n / MiB:.0f} MiB"


@dataclass(frozen=True)
class Estimate:
    """A model's resident size at one context, part by part, and what it was computed from.

    `reserved` is for runtimes that claim a share of the device whatever the model (vLLM); the
    inputs are kept so the verdict can search for the largest context that would fit.
    """

    model: str
    context: int
    parallel: int
    weights: int
    kv: int
    graph: int
    overhead: int
    reserved: int = 0
    meta: ModelMetadata | None = None
    kv_bytes_per_elem: float = 2.0
    ubatch: int = DEFAULT_UBATCH

    @property
    def total(self) -> int:
        return self.weights + self.kv + self.graph + self.overhead + self.reserved

    def breakdown(self) -> str:
        parts = [
            ("weights", self.weights),
            ("KV", self.kv),
            ("graph", self.graph),
            ("overhead", self.overhead),
            ("reserved", self.reserved),
        ]
        return " + ".join(f"{name} {fmt_bytes(n)}" for name, n in parts if n)


def kv_bytes(meta: ModelMetadata, n_ctx_total: int, bytes_per_elem: float) -> int:
    """Σ over layers of n_ctx_total × n_head_kv(l) × (head_dim_k + head_dim_v) × bytes."""
    per_token = sum(meta.kv_heads_per_layer()) * (meta.head_dim_k + meta.head_dim_v)
    return math.ceil(n_ctx_total * per_token * bytes_per_elem)


def graph_bytes(meta: ModelMetadata, n_ctx_total: int, kv: int, ubatch: int = DEFAULT_UBATCH) -> int:
    """Compute-graph buffer: an approximation, not llama.cpp's per-architecture graph.

    With flash attention (llama.cpp's default where supported) the buffer is an f16 KQ mask of
    n_ctx_total × ubatch plus about 13 f32 activations of embedding_length per ubatch token; this
    reproduces the "compute buffer size" llama.cpp logs for SmolLM2 at 2k, 8k and 16k context within
    1 MiB. Without the embedding length we fall back to Ollama's unknown-architecture rule, KV / 6.
    """
    if meta.embedding_length is None:
        return kv // 6
    return ubatch * (2 * n_ctx_total + 4 * 13 * meta.embedding_length)


def estimate(
    meta: ModelMetadata,
    context: int,
    parallel: int = 1,
    kv_bytes_per_elem: float = 2.0,
    overhead_bytes: int = CPU_OVERHEAD_BYTES,
    ubatch: int = DEFAULT_UBATCH,
) -> Estimate:
    """Resident bytes of `meta` served with `parallel` slots of `context` tokens each."""
    n_ctx_total = context * parallel
    kv = kv_bytes(meta, n_ctx_total, kv_bytes_per_elem)
    return Estimate(
        model=meta.name,
        context=context,
        parallel=parallel,
        weights=meta.weights_bytes,
        kv=kv,
        graph=graph_bytes(meta, n_ctx_total, kv, ubatch),
        overhead=overhead_bytes,
        meta=meta,
        kv_bytes_per_elem=kv_bytes_per_elem,
        ubatch=ubatch,
    )


# The KV cache assumed per token of context when the layer shape is unknown: f16, enough for the GQA
# models run today (Qwen3-30B-A3B needs 96 KiB, Llama-3.1-70B 320 KiB); old full-attention models need more.
ASSUMED_KV_BYTES_PER_TOKEN = 512 * 1024
ASSUMPTION = "assumed KV of 0.5 MiB per token of context"


def assumed_estimate(
    model: str, context: int, parallel: int, weights_bytes: int, overhead_bytes: int
) -> Estimate:
    """A model of known size and unknown shape: weights + the assumed KV + overhead (no graph term)."""
    return Estimate(
        model=model,
        context=context,
        parallel=parallel,
        weights=weights_bytes,
        kv=context * parallel * ASSUMED_KV_BYTES_PER_TOKEN,
        graph=0,
        overhead=overhead_bytes,
    )


def combined_estimate(parts: list[Estimate]) -> Estimate:
    """Models that share a host, as one: their parts summed (one model: itself, its shape kept for hints)."""
    if len(parts) == 1:
        return parts[0]
    return Estimate(
        model=" + ".join(p.model for p in parts),
        context=parts[0].context,
        parallel=parts[0].parallel,
        weights=sum(p.weights for p in parts),
        kv=sum(p.kv for p in parts),
        graph=sum(p.graph for p in parts),
        overhead=sum(p.overhead for p in parts),
        reserved=sum(p.reserved for p in parts),
    )


def reserved_estimate(model: str, context: int, fraction: float, device_total: int) -> Estimate:
    """vLLM claims `--gpu-memory-utilization` of the device up front, whatever the model's size."""
    return Estimate(
        model=model,
        context=context,
        parallel=1,
        weights=0,
        kv=0,
        graph=0,
        overhead=0,
        reserved=int(fraction * device_total),
    )


@dataclass(frozen=True)
class Available:
    """Memory a new model may use: what the device has free, less what we keep for everyone else."""

    kind: Literal["ram", "nvidia"]
    device: str
    total: int
    free: int
    reserve: int

    @property
    def usable(self) -> int:
        return max(0, self.free - self.reserve)

    def describe(self) -> str:
        return (
            f"{fmt_bytes(self.usable)} ({self.device}: {fmt_bytes(self.free)} free of "
            f"{fmt_bytes(self.total)} − {fmt_bytes(self.reserve)} reserve)"
        )


def _nvidia_memory(reserve_bytes: int) -> Available | None:
    """The emptiest NVIDIA GPU via NVML, or None when pynvml or a driver is absent (never required)."""
    try:
        import pynvml  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return None
    try:
        best: Available | None = None
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            info = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name: Any = pynvml.nvmlDeviceGetName(handle)
            label = f"GPU {i} {name.decode() if isinstance(name, bytes) else name}"
            found = Available("nvidia", label, int(info.total), int(info.free), reserve_bytes)
            if best is None or found.free > best.free:
                best = found
        return best
    finally:
        pynvml.nvmlShutdown()


def available_memory(
    reserve_bytes: int = DEFAULT_RESERVE_BYTES, device: Literal["auto", "ram", "nvidia"] = "auto"
) -> Available:
    """Free device memory on a discrete NVIDIA GPU, else available RAM (CPU and unified memory).

    On unified memory (Apple silicon, GB10) the GPU's share *is* RAM, so psutil's figure is the
    right one; the reserve stands for the OS and the co-resident workloads (a dev cluster, the IDE).
    """
    if device in ("auto", "nvidia"):
        gpu = _nvidia_memory(reserve_bytes)
        if gpu is not None:
            return gpu
        if device == "nvidia":
            raise BackendError("no NVIDIA GPU visible through NVML; install pynvml or use device 'ram'.")
    vm = psutil.virtual_memory()
    return Available("ram", "RAM", int(vm.total), int(vm.available), reserve_bytes)


def overhead_for(available: Available) -> int:
    """The fixed-overhead term that matches the device the model will live on."""
    return CUDA_OVERHEAD_BYTES if available.kind == "nvidia" else CPU_OVERHEAD_BYTES


@dataclass(frozen=True)
class FitVerdict:
    """The memory guard's answer for one load: does it fit, and the line that says why."""

    fits: bool
    message: str  # one line: model, estimate with breakdown, available, and what to change


def _fits(total: int, budget: int, margin_fraction: float) -> bool:
    return total * (1 + margin_fraction) <= budget


def largest_context(est: Estimate, budget: int, margin_fraction: float) -> int | None:
    """The largest context (a multiple of CONTEXT_STEP, below the asked one) that fits, if any."""
    meta = est.meta
    if meta is None:
        return None

    def fits_at(ctx: int) -> bool:
        trial = estimate(meta, ctx, est.parallel, est.kv_bytes_per_elem, est.overhead, est.ubatch)
        return _fits(trial.total, budget, margin_fraction)

    lo, hi = 0, est.context // CONTEXT_STEP  # in steps; the answer is lo * CONTEXT_STEP
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits_at(mid * CONTEXT_STEP):
            lo = mid
        else:
            hi = mid - 1
    return lo * CONTEXT_STEP or None


def verdict(est: Estimate, available: Available, margin_fraction: float = 0.10) -> FitVerdict:
    """Fits only with `margin_fraction` to spare: "barely fits" means doesn't fit."""
    budget = available.usable
    slots = f"×{est.parallel}" if est.parallel > 1 else ""
    head = (
        f"{est.model} at context {est.context}{slots}: needs {fmt_bytes(est.total)} "
        f"({est.breakdown()}) + {margin_fraction:.0%} margin, available {available.describe()}"
    )
    if _fits(est.total, budget, margin_fraction):
        return FitVerdict(True, f"fits: {head}")
    hints = []
    ctx = largest_context(est, budget, margin_fraction)
    if ctx:
        hints.append(f"a context of at most {ctx}")
    if est.meta is not None:
        room_for_weights = int(budget / (1 + margin_fraction)) - (est.total - est.weights)
        if room_for_weights > 0:
            hints.append(f"a smaller quant (weights ≤ {fmt_bytes(room_for_weights)})")
    if not hints:
        hints.append("a smaller model or a host with more free memory")
    if available.reserve:
        hints.append("a smaller --reserve if the host really has nothing else to run")
    return FitVerdict(False, f"won't fit: {head}; try {' or '.join(hints)}")


def _field(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def metadata_from_gguf(path: str | Path) -> ModelMetadata:
    """Size-relevant facts from a GGUF header, cached per file version (the header parse takes seconds:
    gguf's reader walks every tokenizer entry in Python)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError as exc:
        raise MetadataError(f"{path}: {exc.strerror}; pass a .gguf model file.") from None
    return _read_gguf(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _read_gguf(path: Path, mtime_ns: int, size: int) -> ModelMetadata:
    from gguf import GGUFReader, LlamaFileType

    try:
        reader = GGUFReader(path)
    except (OSError, ValueError) as exc:
        raise MetadataError(f"{path}: cannot read a GGUF header ({exc}); pass a .gguf model file.") from exc
    arch = _field(reader, "general.architecture")
    if not arch:
        raise MetadataError(f"{path}: no general.architecture in the GGUF header; is it a model file?")

    def key(name: str) -> Any:
        return _field(reader, f"{arch}.{name}")

    layers, embd, heads = key("block_count"), key("embedding_length"), key("attention.head_count")
    if isinstance(heads, list):
        heads = max(heads)
    kv_heads = key("attention.head_count_kv")
    kv_heads = heads if kv_heads is None else kv_heads
    if layers is None or kv_heads is None:
        raise MetadataError(f"{path}: the header lacks {arch}.block_count or attention head counts.")
    head_dim_k = key("attention.key_length") or (embd // heads if embd and heads else None)
    if head_dim_k is None:
        raise MetadataError(f"{path}: cannot derive the head size ({arch}.attention.key_length missing).")
    file_type = _field(reader, "general.file_type")
    try:
        quant = LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else None
    except ValueError:
        quant = None
    vocab = key("vocab_size")
    if vocab is None and "tokenizer.ggml.tokens" in reader.fields:
        vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    return ModelMetadata(
        name=_field(reader, "general.name") or path.stem,
        architecture=arch,
        layers=int(layers),
        kv_heads=tuple(int(h) for h in kv_heads) if isinstance(kv_heads, list) else int(kv_heads),
        head_dim_k=int(head_dim_k),
        head_dim_v=int(key("attention.value_length") or head_dim_k),
        context_max=key("context_length"),
        weights_bytes=sum(int(t.n_bytes) for t in reader.tensors),
        quantization=quant,
        embedding_length=embd,
        head_count=heads,
        vocab_size=vocab,
    )


def with_name(meta: ModelMetadata, name: str) -> ModelMetadata:
    """The same shape under the name the user typed (a path or a spec), for messages."""
    return replace(meta, name=name)
