"""A real `ManagedHost` for tests and benchmarks: each loaded model is an xllamacpp server process.

"Load" spawns `python gguf_host.py GGUF CONTEXT RECORD` in its own session; the child writes
RECORD (pid, address, RSS before the model) once it listens, and lives until SIGTERM. The host
finds loaded models from those records, so every process given the same registry directory sees
the same host, as pytest-xdist workers see one Ollama. A `stubborn` host's servers ignore SIGTERM,
which is how a runtime stuck "Stopping…" looks from outside.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped,unused-ignore]

from pytest_agentloop.backends.lifecycle import LoadedModel, ModelMetadata
from pytest_agentloop.memory import metadata_from_gguf, with_name


def _running(pid: int) -> bool:
    """Alive and not a zombie: a server we spawned lingers as a zombie until this process reaps it."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


@dataclass
class ProcessHost:
    registry: Path
    models: dict[str, Path]
    stubborn: bool = False
    reserved_fraction: float | None = None

    @property
    def name(self) -> str:
        return f"gguf-process@{self.registry}"

    def _records(self) -> dict[str, dict[str, Any]]:
        found = {}
        for path in sorted(self.registry.glob("*.json")):
            record = json.loads(path.read_text())
            if _running(record["pid"]):
                found[path.stem] = record
        return found

    def available_models(self) -> list[str]:
        return sorted(self.models)

    def loaded_models(self) -> list[LoadedModel]:
        loaded = []
        for name, record in self._records().items():
            if "address" not in record:
                continue  # still starting
            try:
                rss = int(psutil.Process(record["pid"]).memory_info().rss)
            except psutil.NoSuchProcess:
                continue
            loaded.append(LoadedModel(name, size_bytes=rss, vram_bytes=None, context=int(record["context"])))
        return loaded

    def model_metadata(self, model: str) -> ModelMetadata:
        return with_name(metadata_from_gguf(self.models[model]), model)

    def load(self, model: str, context: int) -> None:
        self.registry.mkdir(parents=True, exist_ok=True)
        record = self.registry / f"{model}.json"
        args = [sys.executable, __file__, str(self.models[model]), str(context), str(record)]
        if self.stubborn:
            args.append("--stubborn")
        subprocess.Popen(args, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def unload(self, model: str) -> None:
        record = self._records().get(model)
        if record is not None:
            os.kill(int(record["pid"]), signal.SIGTERM)

    def version(self) -> str:
        import xllamacpp

        return f"xllamacpp {getattr(xllamacpp, '__version__', '?')}"

    def wait_ready(self, model: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """The child's record once it listens (benchmarks and sizing tests, not the lease path)."""
        for _ in range(int(timeout_s / 0.1)):
            record = self._records().get(model, {})
            if "address" in record:
                return record
            time.sleep(0.1)
        raise TimeoutError(f"{model} did not start serving within {timeout_s:.0f} s")

    def kill_all(self, timeout_s: float = 10.0) -> None:
        """Test teardown: SIGKILL every server this registry knows, and wait (bounded) for them."""
        for path in self.registry.glob("*.json"):
            pid = json.loads(path.read_text())["pid"]
            try:
                proc = psutil.Process(pid)
                proc.kill()
                proc.wait(timeout=timeout_s)
            except psutil.NoSuchProcess:
                pass
            path.unlink(missing_ok=True)


def _write_record(record: Path, fields: dict[str, Any]) -> None:
    """Atomically, so a reader never sees half a record."""
    tmp = record.with_suffix(".tmp")
    tmp.write_text(json.dumps(fields))
    tmp.replace(record)


def _serve(gguf: str, context: int, record: Path, stubborn: bool) -> None:
    """Child side: announce the pid at once, serve, announce the address, then wait for SIGTERM."""
    import xllamacpp as x

    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    me = psutil.Process()
    base = {"pid": os.getpid(), "context": context, "rss_before": me.memory_info().rss}
    _write_record(record, base)
    params = x.CommonParams()
    params.model.path = gguf
    params.n_ctx = context
    params.n_parallel = 1
    params.cpuparams.n_threads = 2
    params.cpuparams_batch.n_threads = 2
    params.hostnames = ["127.0.0.1"]
    params.port = 0
    params.use_jinja = True
    server = x.Server(params)
    _write_record(record, {**base, "address": server.listening_address})
    for _ in range(24 * 3600):  # a day at most: a leaked server still ends
        time.sleep(1)


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), "--stubborn" in sys.argv[4:])
