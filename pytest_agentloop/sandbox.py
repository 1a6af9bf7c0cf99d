"""Running untrusted, model-written code: isolation plus time, memory, output, file and process limits.

The API (grading and the tools build on it; keep it backward compatible):

    run_sandboxed(command, cwd, limits, *, env=None, writable=(), visible=(), network=None,
                  pass_fds=(), mount_proc=True) -> SandboxResult

- `command`: a string (run with /bin/sh -c) or an argv list. `cwd`: the one writable tree (its
  `.git` is read-only inside, unless listed in `writable`).
- `writable` / `visible`: more host paths to bind at their own path, read-write / read-only;
  read-only binds go last, so `visible=[cwd / "checks"]` protects a folder inside `cwd`.
- `network`: None takes `limits.network` (the canary's `[sandbox] network`, see `for_canary`);
  without it the command has no network at all, the host's loopback included.
- `limits.engine`: "bwrap" (default), "podman" (with `limits.image`) or "none" (host, resource
  limits only: an UNSANDBOXED run). What each engine lets the command see is isolation.py's job;
  `require(limits)` raises SandboxUnavailable with one line naming the fix when it cannot run,
  and `interpreter(limits)` is the Python a command should name (the image's under podman).
- `env`: added to a scrubbed environment (fixed PATH, HOME and TMPDIR, no proxies, no API keys).
- `pass_fds`: open file descriptors the command inherits, renumbered 3, 4, ... in that order (so
  they are the same numbers under every engine; podman gets `--preserve-fds`).
- `mount_proc`: False mounts no `/proc` in a bubblewrap sandbox (grading: no other process's memory,
  environment or fds to open, not even its own); podman always mounts one.

How each limit is enforced, and why this way:

- Its own session (`setsid`), so the whole process group can be killed on timeout and again after
  the command exits: a background `sleep 1000 &` does not outlive the call. Under bubblewrap the
  command is also in its own pid namespace, which dies with it.
- rlimits (address space, file size, CPU time, open files, no core dumps) are set by a tiny Python
  shim that then `exec`s the command (or bwrap around it). A shim rather than `preexec_fn`, because
  the harness may host threads (the embedded llama.cpp server) and `preexec_fn` is unsafe after
  fork in a threaded process.
- Output goes to a temp file, never a pipe: the file is bounded by RLIMIT_FSIZE and only its head
  and tail are read back, so 1 GB of output costs the harness no memory.
- Fork storms: RLIMIT_NPROC is ignored for root (the kernel exempts uid 0), and we run as root here.
  So the shim puts itself in a fresh **pids cgroup** (v1 `pids` hierarchy, or a v2 cgroup whose
  parent delegates `pids`) with `pids.max = max_processes` before it execs; the cgroup also lists
  every descendant, even one that left the process group with `setsid`, so the cleanup kills them
  all, then removes it. The cgroup filesystem itself is not visible inside the sandbox, so the code
  cannot leave it. Without a writable cgroup, a non-root harness falls back to RLIMIT_NPROC (the
  user's current process count + max_processes, since that limit counts all of the user's
  processes). Root without a writable cgroup cannot contain a fork storm, so `run_sandboxed`
  refuses with SandboxUnavailable rather than pretend.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_agentloop import isolation
from pytest_agentloop.isolation import SANDBOX_HOME, SANDBOX_TMP, Engine, SandboxUnavailable, View

if TYPE_CHECKING:
    from pytest_agentloop.canary import Canary

__all__ = [
    "Engine", "SandboxPolicy", "SandboxResult", "SandboxUnavailable", "interpreter", "require",
    "run_sandboxed",
]  # fmt: skip

_MB = 1024 * 1024
_KILL_ROUNDS = 100  # bounded cleanup: at most 100 rounds x 20 ms
_KILL_PAUSE_S = 0.02
_REAP_TIMEOUT_S = 5.0
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_names = itertools.count()

# Runs in the child: join the cgroup, set the limits, renumber the passed fds from 3, become the command.
_SHIM = """\
import fcntl, os, resource, sys, json
procs, limits, fds = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]
for fd in fds:
    os.close(fd)
for number, fd in enumerate(high, start=3):
    os.dup2(fd, number)
    os.close(fd)
if procs:
    with open(procs, "w") as f:
        f.write(str(os.getpid()))
for name, value in limits.items():
    key = getattr(resource, name)
    hard = resource.getrlimit(key)[1]
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(key, (value, value))
try:
    os.execvp(sys.argv[4], sys.argv[4:])
except OSError as exc:
    sys.stderr.write(f"sandbox: cannot run {sys.argv[4]!r}: {exc.strerror}\\n")
    os._exit(127)
"""


@dataclass(frozen=True)
class SandboxPolicy:
    """What sandboxed commands may use (resource limits) and see (engine, image, network): one per run
    from the `[sandbox]` table (config.SandboxSettings), narrowed per canary by `for_canary`."""

    timeout_s: float = 60.0
    memory_mb: int = 2048
    output_bytes: int = 64_000
    max_processes: int = 256
    file_size_mb: int = 64
    open_files: int = 1024
    engine: Engine = "bwrap"
    tmp_mb: int = 256  # the sandbox's private /tmp (and HOME): a tmpfs this size
    image: str | None = None  # podman image (or rootfs directory) when engine = "podman"
    network: bool = False  # the canary declared it needs the network

    def for_canary(self, canary: Canary) -> SandboxPolicy:
        """These limits with the canary's `[sandbox]` table applied (network, image)."""
        wants = canary.spec.sandbox
        return dataclasses.replace(self, network=wants.network, image=wants.image or self.image)

    @property
    def sandboxed(self) -> bool:
        """False for `engine = "none"`: model-written code then runs on the host (UNSANDBOXED)."""
        return self.engine != "none"


@dataclass
class SandboxResult:
    exit_code: int | None  # None when it timed out; negative: killed by that signal
    output: str  # stdout + stderr merged; head and tail kept when longer than output_bytes
    timed_out: bool
    duration_s: float
    truncated: bool
    killed: str | None  # why it was killed, if it was

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed is None


def require(limits: SandboxPolicy) -> None:
    """Raise SandboxUnavailable, one line naming the fix, unless `limits.engine` can run here."""
    isolation.require(limits.engine, limits.image)


def interpreter(limits: SandboxPolicy) -> str:
    """The Python a sandboxed command should name (the harness's, or the podman image's)."""
    return isolation.interpreter(limits.engine)


def run_sandboxed(
    command: str | Sequence[str],
    cwd: Path,
    limits: SandboxPolicy,
    *,
    env: Mapping[str, str] | None = None,
    writable: Sequence[Path] = (),
    visible: Sequence[Path] = (),
    network: bool | None = None,
    pass_fds: Sequence[int] = (),
    mount_proc: bool = True,
) -> SandboxResult:
    """Run `command` (a string: with /bin/sh -c) in `cwd` under `limits`; leaves no process behind.

    See the module docstring for what `writable`, `visible` and `network` mean.
    """
    require(limits)
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    view = View(
        Path(cwd).absolute(),
        tuple(Path(p).absolute() for p in writable),
        tuple(Path(p).absolute() for p in visible),
        limits.network if network is None else network,
        mount_proc,
        len(pass_fds),
    )
    rlimits = {
        "RLIMIT_AS": limits.memory_mb * _MB,
        "RLIMIT_FSIZE": limits.file_size_mb * _MB,
        "RLIMIT_CPU": int(limits.timeout_s) + 2,
        "RLIMIT_NOFILE": limits.open_files,
        "RLIMIT_CORE": 0,
    }
    cgroup = _make_cgroup(limits.max_processes)
    if cgroup is None:
        rlimits["RLIMIT_NPROC"] = _nproc_limit(limits.max_processes)
    procs_file = str(cgroup / "cgroup.procs") if cgroup else ""
    with tempfile.TemporaryDirectory(prefix="agentloop-sandbox-") as scratch:
        child_env = _scrubbed_env(Path(scratch), env, limits.engine)
        wrapped = _wrap(argv, view, limits, rlimits, child_env)
        shim = [
            sys.executable,
            "-I",
            "-S",
            "-c",
            _SHIM,
            procs_file,
            json.dumps(rlimits),
            json.dumps(list(pass_fds)),
        ]
        out_path = Path(scratch) / "output"
        start = time.monotonic()
        try:
            with out_path.open("wb") as out:
                proc = subprocess.Popen(
                    [*shim, *wrapped],
                    cwd=cwd,
                    env=child_env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    pass_fds=tuple(pass_fds),
                )
                exit_code, timed_out = _wait(proc, limits.timeout_s, cgroup)
            duration = time.monotonic() - start
        finally:
            if cgroup is not None:
                _remove_cgroup(cgroup)
        output, truncated, size = _read_capped(out_path, limits.output_bytes)
    if limits.sandboxed and exit_code is not None and 128 < exit_code < 128 + signal.NSIG:
        exit_code = 128 - exit_code  # the engine's "killed by signal N" status, as Popen reports it
    return SandboxResult(
        exit_code=exit_code,
        output=output,
        timed_out=timed_out,
        duration_s=duration,
        truncated=truncated,
        killed=_why_killed(exit_code, timed_out, size, limits),
    )


def _wrap(
    argv: list[str], view: View, limits: SandboxPolicy, rlimits: dict[str, int], env: dict[str, str]
) -> list[str]:
    """`argv` inside the engine; under podman the rlimits move onto the container (see isolation)."""
    if limits.engine == "bwrap":
        return [*isolation.bwrap_argv(view, limits.tmp_mb), *argv]
    if limits.engine == "podman":
        assert limits.image is not None  # require() refused otherwise
        name = f"agentloop-{os.getpid()}-{next(_names)}"
        ulimits = {**rlimits, "RLIMIT_NPROC": limits.max_processes}  # podman's own default is refused
        inner = isolation.podman_argv(view, limits.image, name, env, ulimits, limits.tmp_mb)
        rlimits.clear()
        return [*inner, *argv]
    return argv


def _wait(proc: subprocess.Popen[bytes], timeout_s: float, cgroup: Path | None) -> tuple[int | None, bool]:
    """Wait up to the timeout, then kill the whole group (and cgroup) whether or not it exited."""
    try:
        proc.wait(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    _kill_all(proc, cgroup)
    try:
        code = proc.wait(timeout=_REAP_TIMEOUT_S)
    except subprocess.TimeoutExpired:  # unkillable (D state): report it rather than hang
        return None, True
    return (None if timed_out else code), timed_out


def _kill_all(proc: subprocess.Popen[bytes], cgroup: Path | None) -> None:
    """SIGKILL the group and the cgroup until nothing of theirs runs (zombies awaiting init don't count)."""
    for _ in range(_KILL_ROUNDS):
        _signal_group(proc.pid)
        if cgroup is not None:
            _signal_cgroup(cgroup)
        proc.poll()  # reap the leader
        if not (_cgroup_members(cgroup) if cgroup is not None else _live_group_members(proc.pid)):
            return
        time.sleep(_KILL_PAUSE_S)


def _signal_group(pgid: int) -> None:
    # PermissionError: the pgid was reused by someone else's process, not ours to kill.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _signal_cgroup(cgroup: Path) -> None:
    for pid in _cgroup_members(cgroup):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _cgroup_members(cgroup: Path) -> list[int]:
    try:
        return [int(pid) for pid in (cgroup / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def _live_group_members(pgid: int) -> int:
    """Processes of the group that are not zombies, read from /proc (stat: pid (comm) state ppid pgrp)."""
    count = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        count += int(fields[2]) == pgid and fields[0] not in ("Z", "X")
    return count


@cache
def _pids_parent() -> Path | None:
    """A cgroup directory where we may create pids-limited children, or None (probed once)."""
    for candidate in _cgroup_candidates():
        probe = candidate / f"agentloop-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except OSError:
            continue
        usable = (probe / "pids.max").exists()
        probe.rmdir()
        if usable:
            return candidate
    return None


def _cgroup_candidates() -> list[Path]:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if "pids" in controllers.split(","):
            found.append(_CGROUP_ROOT / "pids" / path.lstrip("/"))
        elif controllers == "" and (_CGROUP_ROOT / "cgroup.controllers").exists():
            v2 = _CGROUP_ROOT / path.lstrip("/")
            control = v2 / "cgroup.subtree_control"
            if control.exists() and "pids" in control.read_text().split():
                found.append(v2)
    return found


def _make_cgroup(max_processes: int) -> Path | None:
    parent = _pids_parent()
    if parent is None:
        if os.geteuid() == 0:
            raise SandboxUnavailable(
                "sandbox: running as root with no writable pids cgroup, so a fork storm cannot be contained "
                "(root ignores RLIMIT_NPROC); run as an unprivileged user or mount /sys/fs/cgroup read-write."
            )
        return None
    cgroup = parent / f"agentloop-{os.getpid()}-{next(_names)}"
    cgroup.mkdir()
    (cgroup / "pids.max").write_text(str(max_processes))
    return cgroup


def _remove_cgroup(cgroup: Path) -> None:
    for _ in range(_KILL_ROUNDS):
        _signal_cgroup(cgroup)
        try:
            cgroup.rmdir()
        except OSError:
            time.sleep(_KILL_PAUSE_S)
        else:
            return


def _nproc_limit(max_processes: int) -> int:
    """RLIMIT_NPROC counts all of the user's processes, so allow what already runs plus the budget."""
    uid = os.getuid()
    running = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                running += entry.stat().st_uid == uid
            except OSError:
                continue
    return running + max_processes


_BASE_ENV = {
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
}


def _scrubbed_env(scratch: Path, extra: Mapping[str, str] | None, engine: Engine) -> dict[str, str]:
    """Inside a sandbox, HOME and TMPDIR are its private tmpfs; on the host, fresh dirs per call."""
    if engine == "none":
        home, tmp = scratch / "home", scratch / "tmp"
        home.mkdir()
        tmp.mkdir()
    else:
        home, tmp = Path(SANDBOX_HOME), Path(SANDBOX_TMP)
    # The harness's interpreter first, so `python` in a command is the one running the harness.
    path = os.pathsep.join(
        dict.fromkeys([str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"])
    )
    return {**_BASE_ENV, "PATH": path, "HOME": str(home), "TMPDIR": str(tmp), **(extra or {})}


def _read_capped(path: Path, cap: int) -> tuple[str, bool, int]:
    """Head and tail of the output file, with a visible note of what was cut; (text, truncated, size)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        if size <= cap:
            return f.read().decode("utf-8", "replace"), False, size
        head = f.read(cap // 2)
        tail_len = cap - len(head)
        f.seek(size - tail_len)
        tail = f.read(tail_len)
    note = f"\n[... {size - len(head) - len(tail)} bytes cut ...]\n".encode()
    return (head + note + tail).decode("utf-8", "replace"), True, size


def _why_killed(
    exit_code: int | None, timed_out: bool, output_size: int, limits: SandboxPolicy
) -> str | None:
    if timed_out:
        return f"timed out after {limits.timeout_s:g} s"
    if output_size >= limits.file_size_mb * _MB:
        return f"output reached the {limits.file_size_mb} MB file size limit"
    if exit_code is None or exit_code >= 0:
        return None
    try:
        sig = signal.Signals(-exit_code)
    except ValueError:
        return f"killed by signal {-exit_code}"
    if sig == signal.SIGXCPU:
        return f"CPU time limit ({int(limits.timeout_s) + 2} s) exceeded"
    if sig == signal.SIGXFSZ:
        return f"a file reached the {limits.file_size_mb} MB file size limit"
    return f"killed by {sig.name}"
