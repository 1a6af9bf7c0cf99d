"""Estimate vs reality: the memory guard's figure against a real xllamacpp server's RSS growth.

For each context, a server for the SmolLM2 GGUF starts in a subprocess (tests/gguf_host.py), answers
one short chat so every buffer is touched, and its RSS growth over the pre-load RSS is compared
with `memory.estimate`. Run: `python benchmarks/bench_memory.py [CONTEXT ...]`.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from gguf_host import ProcessHost  # type: ignore[import-not-found]

from pytest_agentloop.backends.embedded import smollm2_path
from pytest_agentloop.memory import MiB, estimate, metadata_from_gguf


def measure(context: int) -> int:
    """RSS growth in bytes of a server at `context`, after one chat."""
    with tempfile.TemporaryDirectory() as registry:
        host = ProcessHost(Path(registry), {"smol": smollm2_path()})
        try:
            host.load("smol", context)
            record = host.wait_ready("smol")
            httpx.post(
                f"{record['address']}/v1/chat/completions",
                json={"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8},
                timeout=120,
            ).raise_for_status()
            return (host.loaded_models()[0].size_bytes or 0) - int(record["rss_before"])
        finally:
            host.kill_all()


def main(contexts: list[int]) -> None:
    meta = metadata_from_gguf(smollm2_path())
    columns = ("context", "weights", "KV", "graph", "overhead", "estimate", "measured", "est-meas")
    print(" ".join(f"{c:>9}" for c in columns))
    for context in contexts:
        est = estimate(meta, context)
        grown = measure(context)
        parts = (est.weights, est.kv, est.graph, est.overhead, est.total, grown, est.total - grown)
        print(f"{context:>9} " + " ".join(f"{p / MiB:>9.1f}" for p in parts))
    print("MiB; estimate minus measured is the unspent part of the overhead allowance (must stay ≥ 0).")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [2048, 8192, 16384])
