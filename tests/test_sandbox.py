"""The sandbox's resource limits against real hostile commands: loops, fork storms, floods, hogs.

Real subprocesses only; every test runs under bubblewrap and with `engine = "none"` (limits alone).
What the sandbox lets code *see* is tested by tests/test_hostile_*.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import psutil
import pytest

from pytest_agentloop.sandbox import Engine, SandboxPolicy, run_sandboxed

PY = sys.executable


@pytest.fixture(params=["bwrap", "none"])
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def survivors(marker: str) -> list[psutil.Process]:
    """Live (non-zombie) processes whose command line carries the marker."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        if proc.info["status"] != psutil.STATUS_ZOMBIE and marker in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
    return found


def test_runs_in_cwd_and_reports_exit_code(engine: Engine, tmp_path: Path) -> None:
    result = run_sandboxed(
        [PY, "-c", "import os; print(os.getcwd()); raise SystemExit(3)"],
        tmp_path,
        SandboxPolicy(engine=engine),
    )
    assert result.exit_code == 3
    assert result.output.strip() == str(tmp_path)
    assert not result.timed_out and result.killed is None and not result.truncated


def test_string_runs_with_sh_and_sequence_does_not(engine: Engine, tmp_path: Path) -> None:
    assert run_sandboxed("echo a | tr a b 1>&2", tmp_path, SandboxPolicy(engine=engine)).output == "b\n"
    assert run_sandboxed(["echo", "$HOME"], tmp_path, SandboxPolicy(engine=engine)).output == "$HOME\n"


def test_unknown_command_says_so(engine: Engine, tmp_path: Path) -> None:
    result = run_sandboxed(["no-such-tool-xyz"], tmp_path, SandboxPolicy(engine=engine))
    assert result.exit_code == 127
    assert "cannot run 'no-such-tool-xyz'" in result.output


def test_env_is_scrubbed(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTLOOP_TEST_SECRET", "hunter2")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    result = run_sandboxed(["env"], tmp_path, SandboxPolicy(engine=engine), env={"EXTRA": "yes"})
    env = dict(line.split("=", 1) for line in result.output.splitlines())
    assert "AGENTLOOP_TEST_SECRET" not in env and "HTTPS_PROXY" not in env
    assert env["EXTRA"] == "yes"
    assert env["PYTHONHASHSEED"] == "0" and env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] == "1"
    assert env["HOME"] != os.environ.get("HOME") and env["HOME"].startswith(env["TMPDIR"].rsplit("/", 1)[0])
    assert env["PATH"].split(":")[0] == str(Path(PY).parent)
    assert set(env) - {"PWD"} == {  # the shell sets PWD
        "EXTRA", "HOME", "LANG", "LC_ALL", "PATH", "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
        "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "TMPDIR",
    }  # fmt: skip


def test_infinite_loop_is_killed_at_timeout(engine: Engine, tmp_path: Path) -> None:
    marker = f"loop-{uuid.uuid4().hex}"
    result = run_sandboxed(
        [PY, "-c", "while True: pass", marker], tmp_path, SandboxPolicy(engine=engine, timeout_s=1)
    )
    assert result.timed_out and result.exit_code is None
    assert result.killed == "timed out after 1 s"
    assert survivors(marker) == []


def test_background_processes_do_not_outlive_the_command(engine: Engine, tmp_path: Path) -> None:
    """Even one that left the process group with setsid."""
    marker = f"{uuid.uuid4().int % 10**6 + 10**6}"
    result = run_sandboxed(
        f"sleep {marker} & setsid sleep {marker} & echo started", tmp_path, SandboxPolicy(engine=engine)
    )
    assert result.exit_code == 0 and result.output == "started\n"
    assert survivors(f"sleep {marker}") == []


def test_fork_storm_is_contained_and_cleaned_up(engine: Engine, tmp_path: Path) -> None:
    marker = f"storm-{uuid.uuid4().hex}"
    storm = (
        "import os, sys, time\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        print('fork refused', flush=True)\n"
        "        time.sleep(0.05)\n"
    )
    limits = SandboxPolicy(engine=engine, timeout_s=4, max_processes=32, memory_mb=512)
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        for _ in range(400):  # bounded: at most ~40 s of sampling
            peak = max(peak, len(survivors(marker)))
            if done.wait(0.1):
                return

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result = run_sandboxed([PY, "-c", storm, marker], tmp_path, limits)
    finally:
        done.set()
        watcher.join()
    assert result.timed_out
    assert "fork refused" in result.output
    assert 0 < peak <= limits.max_processes
    assert survivors(marker) == []


def test_a_gigabyte_of_output_is_capped_without_harness_memory(engine: Engine, tmp_path: Path) -> None:
    flood = "import sys\nchunk = 'x' * (1 << 20)\nfor _ in range(1024): sys.stdout.write(chunk)\n"
    limits = SandboxPolicy(engine=engine, output_bytes=10_000, file_size_mb=16)
    rss_before = psutil.Process().memory_info().rss
    result = run_sandboxed([PY, "-c", flood], tmp_path, limits)
    assert psutil.Process().memory_info().rss - rss_before < 32 * 1024 * 1024
    assert result.truncated
    assert result.killed == "output reached the 16 MB file size limit"
    assert len(result.output) < limits.output_bytes + 100
    assert f"[... {16 * 1024 * 1024 - 10_000} bytes cut ...]" in result.output


def test_long_output_keeps_head_and_tail(engine: Engine, tmp_path: Path) -> None:
    script = "print('HEAD' + 'a' * 50_000); print('b' * 50_000 + 'TAIL')"
    result = run_sandboxed([PY, "-c", script], tmp_path, SandboxPolicy(engine=engine, output_bytes=1000))
    assert result.truncated and result.exit_code == 0 and result.killed is None
    assert result.output.startswith("HEAD") and result.output.endswith("TAIL\n")
    assert "bytes cut ...]" in result.output


def test_memory_hog_is_stopped(engine: Engine, tmp_path: Path) -> None:
    hog = "blocks = []\nwhile True: blocks.append(bytearray(64 << 20))\n"
    result = run_sandboxed(
        [PY, "-c", hog], tmp_path, SandboxPolicy(engine=engine, memory_mb=256, timeout_s=30)
    )
    assert result.exit_code != 0 and not result.timed_out
    assert "MemoryError" in result.output


def test_file_size_limit_applies_to_files_too(engine: Engine, tmp_path: Path) -> None:
    script = "open('big.bin', 'wb').write(b'0' * (8 << 20))"
    result = run_sandboxed([PY, "-c", script], tmp_path, SandboxPolicy(engine=engine, file_size_mb=1))
    assert result.exit_code != 0
    assert "File too large" in result.output
    assert (tmp_path / "big.bin").stat().st_size <= 1 << 20


def test_a_harness_in_a_venv_under_tmp_sees_its_interpreter(tmp_path: Path) -> None:
    """The sandbox's private /tmp must not hide an interpreter that lives under the host's /tmp.

    A user's (or CI's) venv in /tmp was shadowed by the tmpfs, so every sandboxed `python` was
    exit 127 and every hidden check "reported nothing".
    """
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True
    )
    work = tmp_path / "work"
    work.mkdir()
    script = (
        "import sys; from pathlib import Path; "
        "from pytest_agentloop.sandbox import SandboxPolicy, run_sandboxed; "
        "r = run_sandboxed([sys.executable, '-c', 'print(6 * 7)'], Path(sys.argv[1]), "
        "SandboxPolicy(timeout_s=60)); "
        "print(r.exit_code, r.output.strip())"
    )
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script, str(work)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.stdout.split() == ["0", "42"], done.stdout + done.stderr
