"""Free memory of the machine a model will live on, read from that machine, never from this one.

The harness often drives a GPU box from a laptop: psutil and NVML here would protect the wrong
machine. So each host says where its figure comes from (`[hosts.NAME]`): its Prometheus
node_exporter (`node_memory_MemAvailable_bytes` on Linux; free + inactive + purgeable from the
Darwin collector's names on macOS), its NVIDIA dcgm-exporter (`DCGM_FI_DEV_FB_FREE`/`_USED`, MiB
per GPU; unified-memory machines such as a GB10 report none, so system RAM is read instead), or a
stated `memory_gib` less what the runtime itself reports resident (Ollama's /api/ps sizes). A
runtime on this machine keeps the local reading.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

from pytest_agentloop.backends.base import InfraError
from pytest_agentloop.backends.lifecycle import LoadedModel
from pytest_agentloop.memory import Available, GiB, MiB, available_memory

if TYPE_CHECKING:
    from pytest_agentloop.config import HostTable

SCRAPE_TIMEOUT_S = 10.0
SCRAPE_TRIES = 3
LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)")

# Reads a host's memory given the reserve to keep; None when nothing says how much it has free.
MemoryReader = Callable[[int], "Available | None"]


def is_this_machine(url: str | None) -> bool:
    """A runtime URL on this machine: none given (the runtime's loopback default), or a local name."""
    host = _hostname(url)
    return host is None or host in LOCAL_NAMES or host == socket.gethostname().lower()


def metrics(url: str) -> dict[str, list[tuple[str, float]]]:
    """A Prometheus text exposition: metric name -> [(labels, value)], retried like every call."""
    failure = ""
    for _ in range(SCRAPE_TRIES):
        try:
            response = httpx.get(url, timeout=SCRAPE_TIMEOUT_S)
        except httpx.TransportError as exc:
            failure = str(exc) or type(exc).__name__
            continue
        if response.status_code == 200:
            break
        failure = f"{response.status_code}"
    else:
        raise InfraError(f"GET {url}: {failure} after {SCRAPE_TRIES} tries; is the exporter running?")
    found: dict[str, list[tuple[str, float]]] = {}
    for line in response.text.splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            try:
                found.setdefault(match[1], []).append((match[2] or "", float(match[3])))
            except ValueError:
                continue
    return found


def _one(found: dict[str, list[tuple[str, float]]], name: str) -> float | None:
    samples = found.get(name)
    return samples[0][1] if samples else None


def node_exporter_memory(url: str, reserve: int, name: str) -> Available:
    """System RAM from node_exporter: the Linux meminfo names, else the Darwin memory collector's."""
    found = metrics(url)
    available, total = (
        _one(found, "node_memory_MemAvailable_bytes"),
        _one(found, "node_memory_MemTotal_bytes"),
    )
    if available is None:  # macOS: no MemAvailable; what can be had without swapping
        parts = [_one(found, f"node_memory_{part}_bytes") for part in ("free", "inactive", "purgeable")]
        total = _one(found, "node_memory_total_bytes")
        if parts[0] is None or parts[1] is None:
            raise InfraError(
                f"{url} has neither node_memory_MemAvailable_bytes (Linux) nor node_memory_free_bytes and "
                "node_memory_inactive_bytes (macOS): enable node_exporter's meminfo/memory collector"
            )
        available = sum(p or 0.0 for p in parts)
    return Available("ram", f"{name} RAM (node_exporter)", int(total or available), int(available), reserve)


def dcgm_memory(url: str, reserve: int, name: str) -> Available | None:
    """The emptiest GPU's framebuffer from dcgm-exporter (MiB); None on unified memory (no FB figures)."""
    found = metrics(url)
    free = found.get("DCGM_FI_DEV_FB_FREE") or []
    used = dict(found.get("DCGM_FI_DEV_FB_USED") or [])
    if not free:
        return None
    labels, most = max(free, key=lambda sample: sample[1])
    gpu = re.search(r'gpu="([^"]*)"', labels)
    total = (most + used.get(labels, 0.0)) * MiB
    device = f"{name} GPU {gpu[1] if gpu else '?'} (dcgm-exporter)"
    return Available("nvidia", device, int(total), int(most * MiB), reserve)


def stated_memory(gib: float, resident: Sequence[LoadedModel], reserve: int, name: str) -> Available:
    """A stated total, less what the runtime reports resident (models it did not say a size for: 0)."""
    total = int(gib * GiB)
    used = sum(m.size_bytes or 0 for m in resident)
    return Available(
        "ram", f"{name} ({gib:g} GiB stated − resident per the runtime)", total, total - used, reserve
    )


def find_machine(machines: dict[str, HostTable], spec: str, url: str | None) -> tuple[str, HostTable] | None:
    """The [hosts.NAME] table of a model: it lists the spec, or NAME or its `url` names the model's host."""
    host = _hostname(url)
    for name, machine in machines.items():
        if spec in machine.models or (host and host in (name.lower(), _hostname(machine.url))):
            return name, machine
    return None


def _hostname(url: str | None) -> str | None:
    if not url:
        return None
    return (urlsplit(url if "://" in url else f"http://{url}").hostname or "").lower() or None


def memory_reader(
    machine: tuple[str, HostTable] | None, url: str | None, resident: Callable[[], Sequence[LoadedModel]]
) -> MemoryReader:
    """How the guard reads one host: its [hosts.NAME] sources in order (DCGM, node_exporter, stated);
    this machine's own reading when the runtime is here; else nothing (the guard says it cannot tell)."""

    def read(reserve: int) -> Available | None:
        if machine is not None:
            name, table = machine
            if table.dcgm_exporter:
                gpu = dcgm_memory(table.dcgm_exporter, reserve, name)
                if gpu is not None:
                    return gpu
            if table.node_exporter:
                return node_exporter_memory(table.node_exporter, reserve, name)
            if table.memory_gib is not None:
                return stated_memory(table.memory_gib, resident(), reserve, name)
        if is_this_machine(url):
            return available_memory(reserve)
        return None

    return read
