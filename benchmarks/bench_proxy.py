"""What the metering proxy adds to each model request of an external agent.

The upstream is the scripted loopback server at zero latency (a `bash` tool call per reply, with
usage) in a process of its own, as a model server is, so a request's time is almost all HTTP and
the proxy's work: forwarding, parsing the reply with the loop's parsers, the redundancy check's
walk of a small work tree. Overhead per request = median time through the proxy minus median time
straight to the server, over the same requests from one keep-alive client, plain and streamed.
Speed targets live here, never in tests.

Run from the repository root: `python -m benchmarks.bench_proxy [--requests 300]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.support import scripted_server_process
from pytest_agentloop.agent.base import AttemptBudget
from pytest_agentloop.agent.metering import Meter, MeteringProxy
from tests.support.tiny_canary import write_tiny_canary

BASH = {
    "type": "function",
    "function": {"name": "bash", "parameters": {"type": "object", "required": ["command"]}},
}


class TimedMeter(Meter):
    """The meter, with the proxy's own work per reply (parsing and counting) timed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spent: list[float] = []

    def count(self, body: dict[str, Any], reply: dict[str, Any], latency_s: float) -> None:
        started = time.perf_counter()
        super().count(body, reply, latency_s)
        self.spent.append(time.perf_counter() - started)


def timed(client: httpx.Client, url: str, count: int, stream: bool) -> list[float]:
    """Seconds per request, each one a fresh conversation of ten messages like an agent's."""
    history = [{"role": "user", "content": "do the task " * 40}] * 10
    body: dict[str, Any] = {"model": "scripted", "messages": history, "tools": [BASH], "stream": stream}
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.post(f"{url}/chat/completions", json=body)
        response.read()
        response.raise_for_status()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    count = parser.parse_args().requests
    with (
        scripted_server_process("bash_forever") as upstream,
        tempfile.TemporaryDirectory() as scratch,
    ):
        work = write_tiny_canary(Path(scratch) / "canary").parent / "repo"
        meter = TimedMeter(AttemptBudget(turns=10 * count, tokens=10**12, seconds=3600), workspace=work)
        with MeteringProxy(upstream, meter) as proxy, httpx.Client(timeout=30) as client:
            for stream in (False, True):
                timed(client, upstream, 20, stream)  # warm both paths
                timed(client, proxy.url, 20, stream)
                direct = statistics.median(timed(client, upstream, count, stream))
                through = statistics.median(timed(client, proxy.url, count, stream))
                kind = "streamed" if stream else "plain"
                print(
                    f"{kind:8} {count} requests: direct {direct * 1000:.2f} ms, "
                    f"through the proxy {through * 1000:.2f} ms, "
                    f"overhead {(through - direct) * 1000:.2f} ms per request (median)"
                )
    print(f"of which parsing and counting a reply: {statistics.median(meter.spent) * 1000:.3f} ms (median)")
    print(f"load average while measured: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    redundant = meter.redundant_tool_calls
    print(f"metered {len(meter.turns)} turns, {meter.tool_calls} tool calls ({redundant} redundant)")


if __name__ == "__main__":
    main()
