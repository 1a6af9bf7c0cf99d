"""A real Prometheus node_exporter (the Debian package) on a free loopback port, meminfo only."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

BINARY = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def node_exporter() -> Iterator[str]:
    """Start it, wait (bounded) until /metrics answers, yield the metrics URL, stop it."""
    port = free_port()
    process = subprocess.Popen(
        [
            BINARY,
            f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults",
            "--collector.meminfo",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        for _ in range(100):
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise RuntimeError(f"{BINARY} exited with {process.returncode}")
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{BINARY} did not answer on {url} within 10 s")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
