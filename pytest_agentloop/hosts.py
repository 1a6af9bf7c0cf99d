"""Model leases on a host: one model resident at a time, loads serialized across processes.

Two models sharing memory is the classic way an evaluation run takes the host down (Ollama
#6637, #2752; llama.cpp #23668), and an unload that "worked" may not have freed anything yet
(#7606, #7654). So every load goes: take the host lock, wait for holders of other models, unload
everything else, VERIFY it is gone and memory has come back, ask the guard, load, VERIFY it is
loaded. The lock is a file lock, so pytest-xdist workers on one machine share it; the state (who
holds which model) is a small JSON file under that lock, and every step is appended to a JSONL log
so a run's load/unload order can be shown afterwards.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import filelock
import psutil  # type: ignore[import-untyped,unused-ignore]

from pytest_agentloop.backends.base import BackendError, InfraError
from pytest_agentloop.backends.lifecycle import LoadedModel, ManagedHost
from pytest_agentloop.hostmemory import MemoryReader
from pytest_agentloop.memory import (
    ASSUMPTION,
    DEFAULT_RESERVE_BYTES,
    FitVerdict,
    MetadataError,
    assumed_estimate,
    available_memory,
    combined_estimate,
    estimate,
    overhead_for,
    reserved_estimate,
    verdict,
)


class ModelWontFit(BackendError):
    """The guard refused the load; the message is one line with the estimate and what to change."""


class HostTimeout(InfraError):
    """A bounded wait on the host ran out (other holders, an unload, a load)."""


@dataclass(frozen=True)
class GuardPolicy:
    """How the memory guard judges a load, in the units it works in (the run's `[guard]` table,
    config.GuardConfig, converted by the runner)."""

    enabled: bool = True
    reserve_bytes: int = DEFAULT_RESERVE_BYTES
    margin_fraction: float = 0.10
    parallel: int = 1
    kv_bytes_per_elem: float = 2.0


@dataclass(frozen=True)
class Waits:
    """Every wait is bounded: seconds for each kind, and the poll interval that counts them."""

    holders_s: float = 1800.0  # other workers finishing with another model
    unload_s: float = 60.0  # a model disappearing from the host and its memory coming back
    load_s: float = 600.0  # a model showing up as loaded
    poll_s: float = 0.25


@dataclass(frozen=True)
class Lease:
    """What a lease holder may want to record: did it load, how long it took, the guard's words."""

    model: str
    context: int
    reused: bool
    load_s: float | None
    guard: str | None


def lease_dir(host_name: str, root: Path | None = None) -> Path:
    """One directory per host name, shared by every process on this machine that uses that host."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", host_name).strip("-")[:60]
    digest = hashlib.sha256(host_name.encode()).hexdigest()[:10]
    base = root if root is not None else Path(tempfile.gettempdir()) / "agentloop-hosts"
    return base / f"{slug}-{digest}"


def read_events(directory: Path) -> list[dict[str, Any]]:
    """The host's event log, oldest first (load, unload, verify, reuse, wait, refuse, release)."""
    path = directory / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _alive(token: str) -> bool:
    return psutil.pid_exists(int(token.split(":", 1)[0]))


class HostManager:
    """Leases models on one host so that loads never overlap and never exceed the memory guard."""

    def __init__(
        self,
        host: ManagedHost,
        guard: GuardPolicy | None = None,
        waits: Waits | None = None,
        root: Path | None = None,
        memory: MemoryReader | None = None,
    ) -> None:
        self.host = host
        # Where free memory is read: the host's own exporters or stated size (hostmemory.py); this
        # machine's RAM/GPU by default, which is right only for a runtime running here.
        self.memory: MemoryReader = memory or available_memory
        self.guard = guard or GuardPolicy()
        self.waits = waits or Waits()
        self.dir = lease_dir(host.name, root)
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = filelock.FileLock(str(self.dir / "host.lock"))
        self._state_path = self.dir / "state.json"

    @contextmanager
    def lease(self, model: str, context: int, partners: Sequence[str] = ()) -> Iterator[Lease]:
        """Hold `model` loaded with at least `context` for the duration of the block.

        `partners` are the models that share the host with it in production (`[guard] co_resident`):
        they are loaded with it, their combined fit is what the guard checks, and they stay loaded.
        """
        token = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"
        resolve = getattr(self.host, "resolve", None)  # the name the host serves it under, if it renames
        model, *others = [str(resolve(m)) if callable(resolve) else m for m in (model, *partners)]
        granted = self._acquire(model, context, token, others)
        try:
            yield granted
        finally:
            self._release([model, *others], token)

    # -- the steps -------------------------------------------------------------------------------

    def _acquire(self, model: str, context: int, token: str, partners: list[str]) -> Lease:
        group = [model, *partners]
        deadline = time.monotonic() + self.waits.holders_s
        logged_wait = False
        while True:
            with self._locked(deadline, f"the lock for {model}"):
                state = self._read_state()
                loaded = {m.name: m for m in self.host.loaded_models()}
                ready = {
                    m
                    for m in group
                    if m in loaded and self._serves(loaded[m], state.get(m, {}).get("context", 0), context)
                }
                if ready == set(group):
                    self._hold(state, group, context, token)
                    self._log("reuse", model, context=context, partners=partners)
                    return Lease(model, context, reused=True, load_s=None, guard=None)
                busy = sorted(m for m, e in state.items() if e["holders"])
                if set(busy) <= set(group):
                    return self._load(model, context, token, state, partners, keep=set(busy) | ready)
            if time.monotonic() >= deadline:
                raise HostTimeout(
                    f"{self.host.name}: waited {self.waits.holders_s:.0f} s for other workers to release "
                    f"{', '.join(busy)} before loading {model}; raise the holders wait or run fewer workers."
                )
            if not logged_wait:
                self._log("wait", model, context=context, held=busy)
                logged_wait = True
            time.sleep(self.waits.poll_s)

    def _hold(self, state: dict[str, Any], group: list[str], context: int, token: str) -> None:
        for name in group:
            entry = state.get(name, {"context": 0, "holders": []})
            state[name] = {"context": entry["context"] or context, "holders": [*entry["holders"], token]}
        self._write_state(state)

    def _serves(self, current: LoadedModel, leased_context: int, context: int) -> bool:
        """Loaded at `context` or more; a runtime whose chats carry their context (Ollama's `num_ctx`)
        must be at exactly it, or the first chat reloads the model at another size, outside the guard."""
        if getattr(self.host, "exact_context", False):
            return (current.context or leased_context) == context
        return max(current.context or 0, leased_context) >= context

    def _load(
        self, model: str, context: int, token: str, state: dict[str, Any], partners: list[str], keep: set[str]
    ) -> Lease:
        group = [model, *partners]
        available = self.host.available_models()
        for name in group:
            if name not in available:
                raise BackendError(
                    f"{self.host.name} has no model {name!r}; it has {', '.join(available) or 'none'}: "
                    "pull or copy it there first."
                )
        doomed = [m.name for m in self.host.loaded_models() if m.name not in keep]
        for name in doomed:
            self._log("unload", name)
            self.host.unload(name)
            state.pop(name, None)
        if doomed:
            seconds = self._wait_for(
                lambda: not {m.name for m in self.host.loaded_models()} & set(doomed),
                self.waits.unload_s,
                f"{', '.join(doomed)} still loaded {self.waits.unload_s:.0f} s after unload; the runtime "
                "may be stuck stopping: stop it by hand and rerun.",
            )
            self._log("unloaded", ", ".join(doomed), seconds=seconds)
        self._write_state(state)
        missing = [name for name in [*partners, model] if name not in keep]  # partners first, together
        judged = self._guard_after_unload(missing, context, recovering=bool(doomed))
        start = time.monotonic()
        for name in missing:
            self._log("load", name, context=context)
            self.host.load(name, context)
            seconds = self._wait_for(
                functools.partial(self._is_loaded, name),
                self.waits.load_s,
                f"{name} not loaded {self.waits.load_s:.0f} s after asking; check the runtime's log.",
            )
            self._log("loaded", name, context=context, seconds=seconds)
        self._hold(state, group, context, token)
        load_s = round(time.monotonic() - start, 3)
        return Lease(model, context, reused=False, load_s=load_s, guard=judged.message if judged else None)

    def _is_loaded(self, model: str) -> bool:
        return model in {m.name for m in self.host.loaded_models()}

    def _guard_after_unload(self, models: list[str], context: int, recovering: bool) -> FitVerdict | None:
        """Ask the guard about `models` together; after an unload, give freed memory until the unload
        deadline to come back."""
        if not self.guard.enabled or not models:
            return None
        deadline = time.monotonic() + (self.waits.unload_s if recovering else 0.0)
        judged = self._judge(models, context)
        while not judged.fits and time.monotonic() < deadline:
            time.sleep(self.waits.poll_s)
            judged = self._judge(models, context)
        if not judged.fits:
            self._log("refused", " + ".join(models), context=context, message=judged.message)
            raise ModelWontFit(judged.message)
        return judged

    def _judge(self, models: list[str], context: int) -> FitVerdict:
        """Whether `models` fit together in what the host has free (one model: whether it fits)."""
        available = self.memory(self.guard.reserve_bytes)
        if available is None:
            return FitVerdict(
                True,
                f"unchecked: {self.host.name} is another machine and nothing says how much memory it has "
                "free; give it a [hosts.NAME] table with node_exporter, dcgm_exporter or memory_gib",
            )
        if self.host.reserved_fraction is not None:
            # vLLM's own rule: it starts or wakes only if its fraction of the device is free. That
            # fraction already leaves the rest to everyone else, so adding the margin and the reserve
            # again would demand 0.9 + 10% + 2 GiB, and a sleeping server could never be woken.
            fraction = self.host.reserved_fraction
            reserved = [reserved_estimate(m, context, fraction, available.total) for m in models]
            return verdict(combined_estimate(reserved), replace(available, reserve=0), 0.0)
        sized, assumed = [], []
        for model in models:
            try:
                meta = self.host.model_metadata(model)
            except MetadataError as exc:  # no shape reported: size under a stated assumption
                if exc.weights_bytes is None:
                    return FitVerdict(True, f"unsized: {exc}; loaded without a memory check")
                overhead = overhead_for(available)
                sized.append(
                    assumed_estimate(model, context, self.guard.parallel, exc.weights_bytes, overhead)
                )
                assumed.append(f" [{ASSUMPTION}, since {exc}]")
                continue
            parallel, kv_elem = self.guard.parallel, self.guard.kv_bytes_per_elem
            sized.append(estimate(meta, context, parallel, kv_elem, overhead_for(available)))
        judged = verdict(combined_estimate(sized), available, self.guard.margin_fraction)
        return replace(judged, message=judged.message + "".join(assumed))

    def _release(self, group: list[str], token: str) -> None:
        with self._locked(time.monotonic() + self.waits.holders_s, f"the lock to release {group[0]}"):
            state = self._read_state()
            for model in group:
                if model in state:
                    state[model]["holders"] = [h for h in state[model]["holders"] if h != token]
            self._write_state(state)
            self._log("release", group[0])

    # -- plumbing --------------------------------------------------------------------------------

    @contextmanager
    def _locked(self, deadline: float, what: str) -> Iterator[None]:
        try:
            self._lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        except filelock.Timeout:
            raise HostTimeout(
                f"{self.host.name}: could not take {what} in time; another worker is loading. "
                f"Lock file: {self._lock.lock_file}"
            ) from None
        try:
            yield
        finally:
            self._lock.release()

    def _wait_for(self, done: Callable[[], bool], limit_s: float, failure: str) -> float:
        start = time.monotonic()
        for _ in range(int(limit_s / self.waits.poll_s) + 1):
            if done():
                return round(time.monotonic() - start, 3)
            if time.monotonic() - start >= limit_s:
                break
            time.sleep(self.waits.poll_s)
        raise HostTimeout(f"{self.host.name}: {failure}")

    def _read_state(self) -> dict[str, Any]:
        """Holders whose process has died are dropped: a crashed worker must not block the host."""
        if not self._state_path.exists():
            return {}
        state: dict[str, Any] = json.loads(self._state_path.read_text() or "{}")
        for entry in state.values():
            entry["holders"] = [h for h in entry["holders"] if _alive(h)]
        return state

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1, sort_keys=True))
        tmp.replace(self._state_path)

    def _log(self, event: str, model: str, **fields: Any) -> None:
        record = {"t": round(time.time(), 3), "pid": os.getpid(), "event": event, "model": model, **fields}
        with open(self.dir / "events.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
