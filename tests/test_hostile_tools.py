"""Hostile tool calls: what a model (or code it ran earlier) can do to the harness through the tools.

FIFOs that would block a read forever, devices, sockets, hard links and symlinks to files outside
the workspace, paths too deep or with NUL bytes, files too big, calls that would outlast the
attempt. Each attack is set up for real on disk (as root, the test can make what an unsandboxed
run could: device nodes, hard links out) and must come back as a refused call with a clear message,
quickly, with nothing outside changed; a call never raises.
"""

from __future__ import annotations

import concurrent.futures
import os
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from pytest_agentloop.agent.tools import READ_CAP, WALK_CAP, WRITE_CAP, Toolbox
from pytest_agentloop.canary import load_canary
from pytest_agentloop.records import ToolCall, ToolResult
from pytest_agentloop.sandbox import SandboxPolicy
from pytest_agentloop.workspace import Workspace
from tests.support.tiny_canary import write_tiny_canary

CALL_TIMEOUT_S = 60  # a call that blocks (a FIFO read) would hang; generous so load never trips it
SECRET = "OUTSIDE-SECRET-do-not-show"


@dataclass
class Bench:
    box: Toolbox
    root: Path
    outside: Path  # a file outside the workspace

    def call(self, name: str, **arguments: Any) -> ToolResult:
        """One call in a worker thread, so a call that blocks fails the test instead of hanging it."""
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(self.box.execute, ToolCall(id="x", name=name, arguments=arguments))
            return future.result(timeout=CALL_TIMEOUT_S)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    canary = load_canary(write_tiny_canary(tmp_path / "canary"))
    outside = tmp_path / "outside.txt"
    outside.write_text(SECRET)
    with Workspace.create(canary, parent=tmp_path) as workspace:
        box = Toolbox(workspace, canary.spec.test_command, SandboxPolicy(timeout_s=60))
        yield Bench(box, workspace.root, outside)


def fifo(b: Bench) -> None:
    os.mkfifo(b.root / "pipe")


def char_device(b: Bench) -> None:
    os.mknod(b.root / "zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero: endless


def unix_socket(b: Bench) -> None:
    import socket

    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(b.root / "sock"))
    sock.close()


def hard_link(b: Bench) -> None:
    os.link(b.outside, b.root / "link.txt")


def symlink_file(b: Bench) -> None:
    (b.root / "peek.txt").symlink_to(b.outside)


def symlink_dir(b: Bench) -> None:
    (b.root / "up").symlink_to(b.outside.parent)


def symlink_git(b: Bench) -> None:
    (b.root / "gitlink").symlink_to(".git")


def symlink_loop(b: Bench) -> None:
    (b.root / "loop").symlink_to("loop")


def big_file(b: Bench) -> None:
    (b.root / "big.txt").write_bytes(b"x" * (READ_CAP + 1))


def many_files(b: Bench) -> None:
    many = b.root / "many"
    many.mkdir()
    for i in range(WALK_CAP + 100):
        (many / f"f{i}").touch()


def nothing(b: Bench) -> None:
    pass


# (id, setup, tool, arguments, words the refusal must contain)
ATTACKS: list[tuple[str, Callable[[Bench], None], str, dict[str, Any], str]] = [
    ("read-fifo", fifo, "read_file", {"path": "pipe"}, "it is a FIFO"),
    ("write-fifo", fifo, "write_file", {"path": "pipe", "content": "x"}, "refused 'pipe'"),
    ("edit-fifo", fifo, "edit_file", {"path": "pipe", "old": "a", "new": "b"}, "it is a FIFO"),
    ("read-char-device", char_device, "read_file", {"path": "zero"}, "it is a device"),
    ("write-char-device", char_device, "write_file", {"path": "zero", "content": "x"}, "it is a device"),
    ("read-socket", unix_socket, "read_file", {"path": "sock"}, "refused 'sock'"),
    ("read-hard-link-out", hard_link, "read_file", {"path": "link.txt"}, "other hard links"),
    ("write-hard-link-out", hard_link, "write_file", {"path": "link.txt", "content": "pwned"}, "hard links"),
    (
        "edit-hard-link-out",
        hard_link,
        "edit_file",
        {"path": "link.txt", "old": "OUTSIDE", "new": "x"},
        "hard",
    ),
    ("read-symlink-out", symlink_file, "read_file", {"path": "peek.txt"}, "outside the repository"),
    ("write-symlink-out", symlink_file, "write_file", {"path": "peek.txt", "content": "x"}, "outside"),
    (
        "write-through-symlinked-dir",
        symlink_dir,
        "write_file",
        {"path": "up/new.txt", "content": "x"},
        "outside",
    ),
    ("list-symlinked-dir", symlink_dir, "list_files", {"path": "up"}, "outside the repository"),
    (
        "write-git-through-symlink",
        symlink_git,
        "write_file",
        {"path": "gitlink/config", "content": "x"},
        ".git",
    ),
    ("symlink-loop", symlink_loop, "read_file", {"path": "loop"}, "cannot be resolved"),
    ("deep-path", nothing, "read_file", {"path": "a/" * 3000 + "b"}, "paths stop at"),
    ("long-name", nothing, "write_file", {"path": "n" * 300, "content": "x"}, "names at 255"),
    ("nul-in-path", nothing, "read_file", {"path": "calc.py\0/etc/passwd"}, "NUL byte"),
    ("nul-in-list-path", nothing, "list_files", {"path": "\0"}, "NUL byte"),
    ("nul-in-write-path", nothing, "write_file", {"path": "x\0y", "content": "x"}, "NUL byte"),
    ("absolute-path", nothing, "read_file", {"path": "/etc/passwd"}, "absolute paths are not allowed"),
    ("dotdot-path", nothing, "read_file", {"path": "../outside.txt"}, "outside the repository"),
    ("git-config", nothing, "write_file", {"path": ".git/config", "content": "[core]\n"}, ".git is managed"),
    ("git-hook", nothing, "write_file", {"path": ".git/hooks/pre-commit", "content": "x"}, ".git is managed"),
    ("huge-read", big_file, "read_file", {"path": "big.txt"}, "more than the"),
    (
        "huge-write",
        nothing,
        "write_file",
        {"path": "huge.txt", "content": "y" * (WRITE_CAP + 1)},
        "more than",
    ),
    ("lone-surrogate", nothing, "write_file", {"path": "s.txt", "content": "a\ud800b"}, "not valid UTF-8"),
    ("huge-listing", many_files, "list_files", {"path": "."}, "stopped after"),
]


@pytest.mark.parametrize(
    ("setup", "tool", "arguments", "words"), [a[1:] for a in ATTACKS], ids=[a[0] for a in ATTACKS]
)
def test_hostile_tool_call_is_refused_clearly(
    bench: Bench, setup: Callable[[Bench], None], tool: str, arguments: dict[str, Any], words: str
) -> None:
    setup(bench)
    rss = psutil.Process().memory_info().rss
    result = bench.call(tool, **arguments)
    assert words in result.output, result.output
    assert tool == "list_files" or not result.ok
    assert not result.changed
    assert SECRET not in result.output
    assert bench.outside.read_text() == SECRET
    assert not (bench.outside.parent / "new.txt").exists()
    assert psutil.Process().memory_info().rss - rss < 64 * 1024 * 1024
    assert len(result.output) <= 8_500


def test_run_tests_cannot_outlast_the_attempt(tmp_path: Path) -> None:
    """A test command that sleeps far past the budget is cut at the time the attempt has left."""
    canary = load_canary(write_tiny_canary(tmp_path / "canary"))
    with Workspace.create(canary, parent=tmp_path) as workspace:
        box = Toolbox(workspace, "sleep 600", SandboxPolicy(timeout_s=600), seconds=2)
        result = box.execute(ToolCall(id="x", name="run_tests"))
        assert not result.ok
        timeout = float(result.output.split("timed out after ")[1].split(" s")[0])
        assert timeout <= 2
        time.sleep(max(0.0, box.deadline - time.monotonic()) if box.deadline else 0)
        late = box.execute(ToolCall(id="y", name="run_tests"))
        assert not late.ok and "time budget is used up" in late.output
        push = box.execute(ToolCall(id="z", name="push"))
        assert not push.ok and "time budget is used up" in push.output


def test_a_regular_file_still_reads_and_writes(bench: Bench) -> None:
    """The guards refuse the odd files only: the everyday calls work as before."""
    assert bench.call("write_file", path="pkg/new.py", content="X = 1\n").ok
    assert bench.call("read_file", path="pkg/new.py").output == "X = 1\n"
    assert bench.call("edit_file", path="pkg/new.py", old="1", new="2").ok
    assert (bench.root / "pkg" / "new.py").read_text() == "X = 2\n"
