"""The guard measures the host it protects (issue 12, point 4).

node_exporter runs for real (the Debian package, started here on loopback with only its meminfo
collector). macOS's node_exporter and NVIDIA's dcgm-exporter cannot run here: their expositions are
served by a loopback server with the metric names their sources define.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped,unused-ignore]
import pytest
from recorded.replay import ReplayServer, Reply

from pytest_agentloop.backends.lifecycle import LoadedModel
from pytest_agentloop.config import HostTable, build_settings
from pytest_agentloop.hostmemory import (
    dcgm_memory,
    find_machine,
    is_this_machine,
    memory_reader,
    node_exporter_memory,
)
from pytest_agentloop.memory import GiB, MiB
from tests._runs import run, tiny_suite
from tests.support.node_exporter import node_exporter
from tests.support.ollama_emulator import OllamaEmulator, OllamaModel

pytest_plugins = ["pytester"]

FIX = [("calc.py", "def add(a, b):\n    return a + b\n")]
DARWIN = """# node_exporter collector/memory_darwin.go, on a 64 GiB Mac
node_memory_active_bytes 2.0e+10
node_memory_compressed_bytes 1.0e+09
node_memory_free_bytes 4.0e+09
node_memory_inactive_bytes 1.2e+10
node_memory_purgeable_bytes 1.0e+09
node_memory_total_bytes 6.8719476736e+10
node_memory_wired_bytes 8.0e+09
"""
DCGM = """# dcgm-exporter default counters: framebuffer in MiB per GPU
# TYPE DCGM_FI_DEV_FB_FREE gauge
DCGM_FI_DEV_FB_FREE{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA L40S",Hostname="gpu-a"} 1024
DCGM_FI_DEV_FB_FREE{gpu="1",UUID="GPU-b",device="nvidia1",modelName="NVIDIA L40S",Hostname="gpu-a"} 40960
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-a",device="nvidia0",modelName="NVIDIA L40S",Hostname="gpu-a"} 44000
DCGM_FI_DEV_FB_USED{gpu="1",UUID="GPU-b",device="nvidia1",modelName="NVIDIA L40S",Hostname="gpu-a"} 5000
"""
GB10 = """# dcgm-exporter on a GB10 (unified memory): no framebuffer counters
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-c",device="nvidia0",modelName="NVIDIA GB10"} 3
DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-c",device="nvidia0",modelName="NVIDIA GB10"} 41
"""


@pytest.fixture(scope="module")
def exporter() -> Iterator[str]:
    with node_exporter() as url:
        yield url


def test_node_exporter_reads_memavailable_of_its_machine(exporter: str) -> None:
    """Linux meminfo collector: node_memory_MemAvailable_bytes and MemTotal_bytes (bytes)."""
    found = node_exporter_memory(exporter, 2 * GiB, "box")
    assert found.total == psutil.virtual_memory().total
    assert abs(found.free - psutil.virtual_memory().available) < 512 * MiB
    assert found.usable == found.free - 2 * GiB and "box RAM (node_exporter)" in found.describe()


def test_darwin_names_are_read_on_a_mac() -> None:
    """collector/memory_darwin.go exports free, inactive, purgeable... (no MemAvailable)."""
    with ReplayServer() as server:
        server.add("GET", "/metrics", Reply(200, DARWIN))
        found = node_exporter_memory(f"{server.url}/metrics", 0, "mac")
    assert (found.free, found.total) == (17_000_000_000, 68_719_476_736)


def test_dcgm_takes_the_emptiest_gpu_and_a_gb10_falls_back_to_ram(exporter: str) -> None:
    """dcgm-exporter: DCGM_FI_DEV_FB_FREE/USED in MiB per GPU; a GB10 has no framebuffer figures,
    so the guard reads the machine's RAM from its node_exporter, as the seeds say."""
    with ReplayServer() as server:
        server.add("GET", "/gpu", Reply(200, DCGM))
        server.add("GET", "/gb10", Reply(200, GB10))
        gpu = dcgm_memory(f"{server.url}/gpu", 0, "gpu-a")
        assert gpu is not None and (gpu.free, gpu.total) == (40960 * MiB, 45960 * MiB)
        assert "GPU 1" in gpu.device
        assert dcgm_memory(f"{server.url}/gb10", 0, "spark") is None
        table = HostTable(dcgm_exporter=f"{server.url}/gb10", node_exporter=exporter)
        read = memory_reader(("spark", table), "http://spark:1234", list)(0)
    assert read is not None and read.kind == "ram" and "spark RAM (node_exporter)" in read.device


def test_a_stated_size_less_what_the_runtime_reports_resident() -> None:
    table = HostTable(memory_gib=64)
    resident = [LoadedModel("a", size_bytes=20 * GiB), LoadedModel("b", size_bytes=None)]
    read = memory_reader(("box", table), "http://box:11434", lambda: resident)(0)
    assert read is not None and (read.total, read.free) == (64 * GiB, 44 * GiB)


def test_a_remote_host_is_never_measured_here() -> None:
    assert is_this_machine(None) and is_this_machine("http://localhost:11434")
    assert not is_this_machine("http://gpu-box:11434")
    assert memory_reader(None, "http://gpu-box:11434", list)(0) is None
    assert memory_reader(None, "http://127.0.0.1:11434", list)(0) is not None


def test_hosts_tables_are_machines_and_pin_their_models() -> None:
    table = {
        "hosts": {
            "ollama:b": "http://gpu-b:11434",
            "gpu-a": {
                "url": "http://gpu-a:11434",
                "models": ["ollama:a"],
                "node_exporter": "http://gpu-a:9100",
            },
        }
    }
    settings = build_settings(table, "t", {})
    assert settings.hosts == {"ollama:b": "http://gpu-b:11434", "ollama:a": "http://gpu-a:11434"}
    assert find_machine(settings.machines, "ollama:a", "http://gpu-a:11434") is not None
    assert find_machine(settings.machines, "ollama:c", "http://GPU-A:8080")[0] == "gpu-a"  # type: ignore[index]
    assert find_machine(settings.machines, "ollama:b", "http://gpu-b:11434") is None
    # --agent-host replaces the URLs, not the machines
    overridden = build_settings(table, "t", {"hosts": ["http://gpu-a:11434"]})
    assert overridden.hosts == ["http://gpu-a:11434"] and "gpu-a" in overridden.machines


BIG = OllamaModel("qwen3:8b", size=5 * GiB)


@pytest.fixture
def remote_ollama() -> Iterator[OllamaEmulator]:
    """An Ollama at 127.0.0.2: for the harness, a host that is not this machine by its name."""
    with OllamaEmulator([BIG], edits=FIX, address="127.0.0.2") as server:
        yield server


def _toml(pytester: pytest.Pytester, url: str, table: str) -> None:
    pytester.makefile(
        ".toml",
        agentloop=f'models = ["ollama:{BIG.name}"]\n[hosts."127.0.0.2"]\nurl = "{url}"\n{table}\n',
    )


def _attempts(path: Path) -> list[dict[str, object]]:
    return list(json.loads(path.read_text())["attempts"])


def test_a_stated_small_host_refuses_what_this_machine_could_hold(
    pytester: pytest.Pytester, remote_ollama: OllamaEmulator
) -> None:
    """This machine has far more than 4 GiB free; the box says 4: the guard refuses, nothing loads."""
    tiny_suite(pytester.path)
    _toml(pytester, remote_ollama.url, "memory_gib = 4")
    result = run(pytester, f"--agent-host={remote_ollama.url}", "-rs")
    assert result.ret in (0, 5), result.stdout.str()
    result.stdout.fnmatch_lines(["*won't fit: qwen3:8b at context 8192*127.0.0.2 (4 GiB stated*"])
    assert remote_ollama.loads == []


def test_a_remote_host_is_guarded_by_its_exporter_or_said_unchecked(
    pytester: pytest.Pytester, remote_ollama: OllamaEmulator, exporter: str
) -> None:
    tiny_suite(pytester.path)
    _toml(pytester, remote_ollama.url, f'node_exporter = "{exporter}"')
    assert run(pytester, "--agent-json=a.json").ret == 0
    guard = {a["model_info"]["guard"] for a in _attempts(pytester.path / "a.json")}
    assert len(guard) == 1 and "127.0.0.2 RAM (node_exporter)" in guard.pop()  # type: ignore[operator]

    (pytester.path / "agentloop.toml").unlink()
    remote_ollama.loaded.clear()  # restarted: a model still loaded would be reused, not judged again
    assert (
        run(
            pytester,
            f"--agent-model=ollama:{BIG.name}",
            f"--agent-host={remote_ollama.url}",
            "--agent-json=b.json",
        ).ret
        == 0
    )
    guard = {a["model_info"]["guard"] for a in _attempts(pytester.path / "b.json")}
    assert guard == {
        f"unchecked: ollama@{remote_ollama.url} is another machine and nothing says how much memory it has "
        "free; give it a [hosts.NAME] table with node_exporter, dcgm_exporter or memory_gib"
    }
