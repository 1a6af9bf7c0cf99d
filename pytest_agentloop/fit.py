"""`agentloop fit`: will this model, at this context, fit on this machine? Answered before loading it.

Prints the estimate part by part, the memory available, and the guard's one-line verdict. Exit
status 0 when it fits, 1 when it does not, 2 when the command line or the model file is wrong, so
a script can gate a long run on it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from pytest_agentloop.backends.base import BackendError, ModelSpec
from pytest_agentloop.backends.embedded import resolve_model_path
from pytest_agentloop.backends.lifecycle import ModelMetadata
from pytest_agentloop.memory import (
    KV_BYTES_PER_ELEM,
    Estimate,
    GiB,
    available_memory,
    estimate,
    fmt_bytes,
    metadata_from_gguf,
    overhead_for,
    verdict,
    with_name,
)


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse prints usage and exits; we want one line and an exit status we return."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(message)


def _parser() -> _Parser:
    parser = _Parser(prog="agentloop fit", description="Estimate a model's memory and judge whether it fits.")
    parser.add_argument("model", help="a .gguf path, or embedded:smollm2-135m / embedded:PATH")
    parser.add_argument("--context", type=int, required=True, help="context tokens per slot")
    parser.add_argument("--parallel", type=int, default=1, help="slots served at once (KV scales with it)")
    parser.add_argument("--kv-type", choices=sorted(KV_BYTES_PER_ELEM), default="f16", help="KV cache type")
    parser.add_argument("--reserve", type=float, default=2.0, help="GiB kept for the OS and other workloads")
    parser.add_argument("--margin", type=float, default=0.10, help="fraction the estimate must clear by")
    return parser


def _resolve(model: str) -> str:
    """The GGUF file behind MODEL: a path as typed, or an `embedded:` spec."""
    if Path(model).is_file() or (model.lower().endswith(".gguf") and ":" not in model.split("/")[0]):
        return model
    spec = ModelSpec.parse(model)
    if spec.backend != "embedded":
        raise _UsageError(
            f"{model}: fit reads GGUF headers, so pass a .gguf path or an embedded: spec "
            f"(sizing {spec.backend}: models through their runtime is not available yet)"
        )
    return str(resolve_model_path(spec.model))


def _report(meta: ModelMetadata, est: Estimate, margin: float, kv_type: str) -> list[str]:
    heads = meta.kv_heads if isinstance(meta.kv_heads, int) else f"{min(meta.kv_heads)}-{max(meta.kv_heads)}"
    lines = [
        f"model      {est.model} ({meta.architecture}, {meta.quantization or '?'}, {meta.layers} layers, "
        f"{heads} KV heads × {meta.head_dim_k}+{meta.head_dim_v}, trained context {meta.context_max or '?'})",
        f"context    {est.context} × {est.parallel} slot(s), KV {kv_type}",
        f"weights    {fmt_bytes(est.weights)}",
        f"KV         {fmt_bytes(est.kv)}",
        f"graph      {fmt_bytes(est.graph)}  (approximation: flash-attention compute buffer)",
        f"overhead   {fmt_bytes(est.overhead)}",
        f"total      {fmt_bytes(est.total)}  (+{margin:.0%} margin = {fmt_bytes(est.total * (1 + margin))})",
    ]
    if meta.context_max and est.context > meta.context_max:
        lines.append(
            f"note       context {est.context} exceeds the trained {meta.context_max}; quality may drop"
        )
    return lines


def fit_command(argv: list[str]) -> int:
    """Entry point for `agentloop fit ARGS`; returns the exit status instead of exiting."""
    try:
        args = _parser().parse_args(argv)
        if args.context < 1 or args.parallel < 1 or args.reserve < 0 or not 0 <= args.margin < 1:
            raise _UsageError("--context and --parallel must be ≥ 1, --reserve ≥ 0, --margin in [0, 1)")
        meta = with_name(metadata_from_gguf(_resolve(args.model)), args.model)
    except (_UsageError, BackendError) as exc:
        print(f"agentloop fit: error: {exc}", file=sys.stderr)
        return 2
    available = available_memory(int(args.reserve * GiB))
    est = estimate(
        meta, args.context, args.parallel, KV_BYTES_PER_ELEM[args.kv_type], overhead_for(available)
    )
    judged = verdict(est, available, args.margin)
    for line in _report(meta, est, args.margin, args.kv_type):
        print(line)
    print(f"available  {available.describe()}")
    print(judged.message)
    return 0 if judged.fits else 1
