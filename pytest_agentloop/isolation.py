"""What sandboxed code can see: the bubblewrap (or podman) command line around it, and whether it runs here.

sandbox.py bounds resources (time, memory, output, processes); this module bounds *visibility*.
With `engine = "bwrap"` (the default) every command runs in fresh Linux namespaces:

- pid: it sees only its own processes (`/proc` is the namespace's own), so the harness's
  `/proc/<pid>/environ`, `cwd` and other attempts are out of sight and out of signal reach;
- net: no network at all, the host's loopback included (the namespace has a loopback of its own),
  unless the canary declares `[sandbox] network = true`;
- mount: an empty root holding the system read-only (`/usr` and the merged-usr links, a short list
  of `/etc` files, the running interpreter's prefix with its site-packages), a private size-capped
  tmpfs as `/tmp` (also `HOME`), the working directory writable at its own path, and nothing else
  of the host: no canary folder, no origin, no other workspace, no `/sys` (so no cgroup
  filesystem), no harness source, no home directory. The working directory's `.git` is bound
  read-only, because the harness's own git reads its config;
- user (no capabilities, no nested user namespaces), ipc, uts and cgroup.

The command is wrapped in `sh -c 'exec "$@"'` inside the sandbox so a missing program is
exit status 127 and "sandbox: cannot run ...", as without a sandbox. bubblewrap returns 128+N when
the command dies of signal N; sandbox.py reads that back as a signal.

`engine = "podman"` runs the command in a container of the canary's image (a name, or a rootfs
directory when it starts with `/`), for canaries that need system packages or another language.
`engine = "none"` runs it on the host (resource limits only) and is reported as UNSANDBOXED.
Whether an engine can run is probed once per process; when it cannot, `require` raises
SandboxUnavailable with one line naming the fix.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

Engine = Literal["bwrap", "podman", "none"]
ENGINES: tuple[Engine, ...] = ("bwrap", "podman", "none")
SANDBOX_TMP = "/tmp"
SANDBOX_HOME = "/tmp/home"
_MB = 1024 * 1024
_PROBE_TIMEOUT_S = 60.0
# Files of /etc that programs need to start and to name users, hosts and time zones; no secrets
# (no shadow, no ssh keys, no machine-id, no environment).
_ETC = (
    "alternatives", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "timezone", "passwd",
    "group", "nsswitch.conf", "hosts", "host.conf", "resolv.conf", "gai.conf", "ssl",
    "ca-certificates", "ca-certificates.conf", "mime.types", "protocols", "services", "os-release",
    "debian_version", "locale.alias", "python3", "python3.11",
)  # fmt: skip
_MERGED_USR = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_MISSING = """command -v "$1" >/dev/null || { echo "sandbox: cannot run '$1': not found" >&2; exit 127; }"""
_EXEC = ["/bin/sh", "-c", _MISSING + '; exec "$@"', "sandbox"]
_FIX = 'install bubblewrap (`apt-get install bubblewrap`) or set `[sandbox] engine = "none"` (unsandboxed)'


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot run here as configured; the message is one line naming the fix."""


@dataclass(frozen=True)
class View:
    """What one sandboxed command may touch, besides the read-only system."""

    cwd: Path  # writable; its `.git` read-only unless listed in `writable`
    writable: tuple[Path, ...] = ()
    visible: tuple[Path, ...] = ()  # read-only, bound after the writable ones (so they may nest)
    network: bool = False
    proc: bool = True  # a /proc of the sandbox's pid namespace (bwrap only; podman always has one)
    fds: int = 0  # file descriptors passed in, numbered from 3

    def readonly(self) -> tuple[Path, ...]:
        git = self.cwd / ".git"
        protect = (git,) if git.exists() and git not in self.writable else ()
        return (*protect, *self.visible)


def bwrap_argv(view: View, tmp_mb: int) -> list[str]:
    """bubblewrap's arguments for `view`, up to (not including) the command."""
    argv = [
        "bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent",
        "--cap-drop", "ALL", "--hostname", "agentloop-sandbox",
        "--dev", "/dev", "--ro-bind", "/usr", "/usr",
    ]  # fmt: skip
    if view.proc:
        argv += ["--proc", "/proc"]
    if view.network:
        argv.append("--share-net")
    for name in _MERGED_USR:
        host = Path("/") / name
        if host.is_symlink():
            argv += ["--symlink", str(host.readlink()), str(host)]
        elif host.is_dir():
            argv += ["--ro-bind", str(host), str(host)]
    for name in _ETC:
        argv += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    # The private /tmp first: an interpreter (or venv) that lives under the host's /tmp is bound
    # on top of it, not hidden by it.
    argv += ["--size", str(tmp_mb * _MB), "--tmpfs", SANDBOX_TMP, "--dir", SANDBOX_HOME]
    for path in _python_roots():
        argv += ["--ro-bind", str(path), str(path)]
    for path in (view.cwd, *view.writable):
        argv += ["--bind", str(path), str(path)]
    for path in view.readonly():
        argv += ["--ro-bind", str(path), str(path)]
    # The root bwrap builds is a tmpfs of its own: read-only too, or it is unbounded RAM to fill.
    return [*argv, "--remount-ro", "/", "--chdir", str(view.cwd), "--", *_EXEC]


def podman_argv(
    view: View, image: str, name: str, env: Mapping[str, str], rlimits: Mapping[str, int], tmp_mb: int
) -> list[str]:
    """podman's arguments for `view` in `image`, up to (not including) the command.

    Its processes stay in the caller's pids cgroup (`--cgroups=disabled`), which is the fence
    sandbox.py kills through; the rlimits go in as `--ulimit`, since podman itself (a Go program)
    must not run under the command's address-space limit.
    """
    argv = [
        "podman", "run", "--rm", "--name", name, "--cgroups=disabled", "--read-only",
        "--network", "slirp4netns" if view.network else "none", "--cap-drop=all",
        "--security-opt", "no-new-privileges", "--tmpfs", f"{SANDBOX_TMP}:rw,size={tmp_mb}m",
        "--workdir", str(view.cwd),
    ]  # fmt: skip
    if view.fds:
        argv.append(f"--preserve-fds={view.fds}")
    for key, limit in rlimits.items():
        argv += ["--ulimit", f"{key.removeprefix('RLIMIT_').lower()}={limit}:{limit}"]
    for path in (view.cwd, *view.writable):
        argv += ["--volume", f"{path}:{path}:rw"]
    for path in view.readonly():
        argv += ["--volume", f"{path}:{path}:ro"]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    argv += ["--rootfs", image] if image.startswith("/") else [image]
    return [*argv, *_EXEC]


def _python_roots() -> list[Path]:
    """The running interpreter's installation (and a venv's base), outside /usr: read-only."""
    roots = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    roots.add(Path(sys.executable).resolve().parent.parent)
    user_site = Path(site.getusersitepackages())
    if site.ENABLE_USER_SITE and user_site.is_dir():
        roots.add(user_site)
    usr = Path("/usr")
    kept = sorted(p for p in roots if p != Path("/") and usr not in (p, *p.parents) and p.is_dir())
    return [p for p in kept if not any(other in p.parents for other in kept)]


def interpreter(engine: Engine) -> str:
    """The Python a sandboxed command should name: the harness's own, or the image's `python`."""
    return "python" if engine == "podman" else sys.executable


def require(engine: Engine, image: str | None = None) -> None:
    """Raise SandboxUnavailable (one line, with the fix) unless `engine` can run here."""
    if engine == "none":
        return
    problem = _bwrap_problem() if engine == "bwrap" else _podman_problem(image)
    if problem is not None:
        raise SandboxUnavailable(problem)


@cache
def _bwrap_problem() -> str | None:
    if shutil.which("bwrap") is None:
        return f"sandbox: bubblewrap (bwrap) is not installed; {_FIX}."
    with tempfile.TemporaryDirectory(prefix="agentloop-probe-") as scratch:
        argv = [*bwrap_argv(View(Path(scratch)), tmp_mb=1), "true"]
        failure = _run_probe(argv)
    return None if failure is None else f"sandbox: bubblewrap cannot run here ({failure}); {_FIX}."


@cache
def _podman_problem(image: str | None) -> str | None:
    fix = 'use `[sandbox] engine = "bwrap"`, or run where podman can start containers'
    if image is None:
        return (
            'sandbox: engine = "podman" needs an image; set `image` in the canary\'s [sandbox] table '
            "or in agentloop.toml's [sandbox]."
        )
    if shutil.which("podman") is None:
        return f"sandbox: podman is not installed; install it (`apt-get install podman`) or {fix}."
    with tempfile.TemporaryDirectory(prefix="agentloop-probe-") as scratch:
        ulimits = {"RLIMIT_NOFILE": 1024, "RLIMIT_NPROC": 256}  # as a real run sets them
        argv = podman_argv(
            View(Path(scratch)), image, f"agentloop-probe-{Path(scratch).name}", {}, ulimits, 1
        )
        failure = _run_probe([*argv, "true"])
    return None if failure is None else f"sandbox: podman cannot run {image} here ({failure}); {fix}."


def _run_probe(argv: Sequence[str]) -> str | None:
    """None when `argv` exits 0, else the last line it printed (or why it did not finish)."""
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return f"no answer in {_PROBE_TIMEOUT_S:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)
    if proc.returncode == 0:
        return None
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"
