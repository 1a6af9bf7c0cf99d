"""One sandboxed run of a canary's hidden checks, read through a channel pushed code cannot rewrite.

The checks run as `python -P -m pytest` in the sandbox with the harness's plugin (grader_plugin.py)
loaded by `-p` before any test module. The plugin streams each report as a JSON line into a FIFO
that a harness thread reads while the checks run: what was read cannot be rewritten later (no
report file on a writable disk for an `atexit` hook to edit). Then the run is checked for tampering:

- **sentinels**: two files of two checks each, with per-run random names, one check that must pass
  and one that must fail, run first and last; a runner that passes everything, or fails everything,
  gets one of them wrong;
- **counts**: every collected check reported exactly once per phase, nothing reported that was not
  collected, nothing written after pytest finished, the process's exit status equal to pytest's;
- **internals**: the plugin names any pytest/pluggy internal replaced during the run, and any pytest
  plugin registered by someone other than the checks' own conftest;
- **the checks on disk**: the hidden files are compared, byte for byte, after the run.

A tampered run is reported as such, never scored as a pass.
"""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pytest_agentloop import grader_plugin
from pytest_agentloop.canary import Canary
from pytest_agentloop.sandbox import SandboxLimits, SandboxResult, interpreter, run_sandboxed

HIDDEN_DIR = ".agentloop_hidden"
PLUGIN_MODULE = "agentloop_grader"
_CHANNEL_CAP = 16 * 1024 * 1024  # bytes; a real run of a few hundred checks writes well under 1 MB
_DRAIN_S = 5.0  # after the sandbox ended, how long the reader may take to finish
_POLL_S = 0.2


@dataclass
class Tally:
    """What one run of the hidden checks said, check by check (sentinels removed)."""

    status: dict[str, str]  # check id -> passed | failed | skipped | xfailed | missing
    files: dict[str, list[str]]  # hidden test file (relative to hidden/) -> its collected check ids
    collect_errors: dict[str, str] = field(default_factory=dict)  # hidden file -> the error's last line
    tampered: str | None = None  # how the runner was tampered with
    error: str | None = None  # why the run did not complete
    imports: list[str] = field(default_factory=list)  # installed distributions the run imported
    output: str = ""


class _Channel:
    """A FIFO read by a thread into a bounded buffer while the sandbox runs.

    The harness holds a write end of its own, so the reader never sees end-of-file before the
    sandbox's writer opened; once the sandbox has ended, closing it lets the reader finish.
    """

    def __init__(self, path: Path) -> None:
        os.mkfifo(path, 0o622)
        self.path = path
        self._read = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self._write: int | None = os.open(path, os.O_WRONLY)
        self.data = bytearray()
        self.flooded = False
        self._thread = threading.Thread(target=self._pump, name="agentloop-grading-channel", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            ready, _, _ = select.select([self._read], [], [], _POLL_S)
            if not ready:
                continue
            try:
                chunk = os.read(self._read, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                return
            if len(self.data) + len(chunk) > _CHANNEL_CAP:
                self.flooded = True
            else:
                self.data += chunk

    def close(self) -> bool:
        """Stop after the sandbox ended; False when some writer still held the channel open."""
        if self._write is not None:
            os.close(self._write)
            self._write = None
        self._thread.join(_DRAIN_S)
        drained = not self._thread.is_alive()
        if drained:
            os.close(self._read)
        return drained


@dataclass(frozen=True)
class _Sentinels:
    files: dict[str, str]  # file name -> source
    must_pass: frozenset[str]  # check ids
    must_fail: frozenset[str]

    @classmethod
    def make(cls) -> _Sentinels:
        files, must_pass, must_fail = {}, set(), set()
        for _ in range(2):
            name = f"test_{secrets.token_hex(6)}.py"
            ok, bad = (f"test_{secrets.token_hex(6)}" for _ in range(2))
            body = [f"def {ok}():\n    assert len('ab') == 2\n", f"def {bad}():\n    assert len('ab') == 3\n"]
            if secrets.randbelow(2):
                body.reverse()
            files[name] = "\n\n".join(body)
            must_pass.add(f"{HIDDEN_DIR}/{name}::{ok}")
            must_fail.add(f"{HIDDEN_DIR}/{name}::{bad}")
        return cls(files, frozenset(must_pass), frozenset(must_fail))

    @property
    def ids(self) -> frozenset[str]:
        return self.must_pass | self.must_fail


def run_hidden(canary: Canary, tree: Path, limits: SandboxLimits) -> Tally:
    """Copy the canary's hidden checks into `tree` (an export) and run them there, sandboxed."""
    hidden = tree / HIDDEN_DIR
    if hidden.exists() or hidden.is_symlink():
        raise FileExistsError(f"{hidden} already exists")
    sentinels = _Sentinels.make()
    written = {**canary.hidden_files, **{k: v.encode() for k, v in sentinels.files.items()}}
    for name, content in written.items():
        path = hidden / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    first, last = sorted(sentinels.files)
    files = [first, *canary.hidden_tests, last]
    with tempfile.TemporaryDirectory(prefix="agentloop-grader-") as scratch:
        harness = Path(scratch)
        shutil.copyfile(grader_plugin.__file__, harness / f"{PLUGIN_MODULE}.py")
        ini = harness / "checks.ini"
        ini.write_text(f"[pytest]\npythonpath = {tree}\n", encoding="utf-8")
        channel = _Channel(harness / "channel")
        command = [
            interpreter(limits),
            "-P",
            "-m",
            "pytest",
            "-q",
            "--tb=short",
            "-p",
            "no:cacheprovider",
            "-p",
            PLUGIN_MODULE,
            "-c",
            str(ini),
            f"--rootdir={tree}",
            f"--confcutdir={hidden}",
            "--continue-on-collection-errors",
            *(f"{HIDDEN_DIR}/{name}" for name in files),
        ]
        env = {
            "PYTHONPATH": str(harness),
            grader_plugin.CHANNEL_ENV: str(channel.path),
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        timeout = replace(limits, timeout_s=canary.spec.checks.timeout)
        try:
            # The export and the checks are read-only inside: nothing the code under test does can
            # change a check or the tree being graded. The harness folder holds the plugin, the
            # ini file and the channel (a FIFO: writable through a read-only mount).
            result = run_sandboxed(command, tree, timeout, env=env, visible=(tree, harness))
        finally:
            drained = channel.close()
        tally = read_events(bytes(channel.data), result, sentinels, canary)
    if channel.flooded:
        tally.tampered = tally.tampered or "the result channel was flooded"
    elif not drained:
        tally.tampered = tally.tampered or "a process kept the result channel open after the run"
    rewritten = _rewritten(hidden, written)
    if rewritten:
        tally.tampered = tally.tampered or f"hidden check file {rewritten} was changed during the run"
    return tally


def _rewritten(hidden: Path, written: dict[str, bytes]) -> str | None:
    for name, content in written.items():
        try:
            if (hidden / name).read_bytes() != content:
                return name
        except OSError:
            return name
    return None


def read_events(data: bytes, result: SandboxResult, sentinels: _Sentinels, canary: Canary) -> Tally:
    """Check by check, from the channel's lines; the first sign of tampering is kept as the reason."""
    reader = _Reader(sentinels)
    for line in data.split(b"\n"):
        if line.strip():
            reader.feed(line)
    return reader.tally(result, canary)


class _Reader:
    def __init__(self, sentinels: _Sentinels) -> None:
        self.sentinels = sentinels
        self.collected: list[str] | None = None
        self.phases: dict[str, dict[str, dict[str, Any]]] = {}
        self.collect_errors: dict[str, str] = {}
        self.collect_text: dict[str, str] = {}
        self.finish: dict[str, Any] | None = None
        self.tampered: str | None = None

    def flag(self, why: str) -> None:
        self.tampered = self.tampered or why

    def feed(self, line: bytes) -> None:
        try:
            event = json.loads(line)
            kind = event["e"]
        except (ValueError, TypeError, KeyError):
            self.flag(f"an unreadable line on the result channel: {line[:80]!r}")
            return
        if self.finish is not None:
            self.flag(f"a {kind!r} event was written after pytest finished")
            return
        if kind == "hello":
            return
        if kind == "collect_error":
            self.collect_errors[str(event.get("id"))] = str(event.get("msg", ""))
            self.collect_text[str(event.get("id"))] = str(event.get("text", ""))
        elif kind == "collected":
            if self.collected is not None:
                self.flag("the checks were announced twice")
            self.collected = [str(i) for i in event.get("ids", [])]
        elif kind == "report":
            self._report(event)
        elif kind == "finish":
            self.finish = event
        else:
            self.flag(f"an unknown event {kind!r} on the result channel")

    def _report(self, event: dict[str, Any]) -> None:
        check, when = str(event.get("id")), str(event.get("when"))
        if self.collected is None or check not in self.collected:
            self.flag(f"a report for {check}, which was never collected")
            return
        phases = self.phases.setdefault(check, {})
        if when in phases:
            self.flag(f"{check} was reported twice for its {when} phase")
            return
        phases[when] = event

    def status(self, check: str) -> str:
        phases = self.phases.get(check, {})
        if "setup" not in phases or ("call" not in phases and phases["setup"]["outcome"] == "passed"):
            return "missing"
        if any(p["outcome"] == "failed" for p in phases.values()):
            return "failed"
        if any(p["outcome"] == "skipped" for p in phases.values()):
            return "xfailed" if any(p.get("xfail") for p in phases.values()) else "skipped"
        return "passed"

    def tally(self, result: SandboxResult, canary: Canary) -> Tally:
        collected = self.collected or []
        finish = self.finish
        error = None
        if result.killed is not None:
            error = result.killed
        elif finish is None:
            error = (
                f"pytest exited with status {result.exit_code} before finishing"
                if self.phases or self.collected is not None
                else f"pytest exited with status {result.exit_code} and reported nothing"
            )
        else:
            self._check_finish(finish, result, collected)
        status = {c: self.status(c) for c in collected if c not in self.sentinels.ids}
        files: dict[str, list[str]] = {name: [] for name in canary.hidden_tests}
        for check in status:
            name = check.partition("::")[0].removeprefix(f"{HIDDEN_DIR}/")
            files.setdefault(name, []).append(check)
        errors = {}
        for node, message in self.collect_errors.items():
            for name in files:
                if f"{HIDDEN_DIR}/{name}" == node or f"{HIDDEN_DIR}/{name}".startswith(
                    node.rstrip("/") + "/"
                ):
                    errors[name] = message
        return Tally(
            status=status,
            files=files,
            collect_errors=errors,
            tampered=self.tampered,
            error=error,
            imports=[str(d) for d in (finish or {}).get("imports", [])],
            output=self.output(status, result, error),
        )

    def output(self, status: dict[str, str], result: SandboxResult, error: str | None) -> str:
        """What a person reads: the checks' own failures (sentinels left out), then pytest's output
        when the run did not complete."""
        lines = [f"ERROR collecting {node}\n{text}" for node, text in self.collect_text.items()]
        for check, state in status.items():
            if state != "passed":
                texts = [p.get("text", "") for p in self.phases.get(check, {}).values() if p.get("text")]
                lines.append(f"{state.upper()} {check}" + "".join(f"\n{t}" for t in texts))
        counts = {s: list(status.values()).count(s) for s in dict.fromkeys(status.values())}
        lines.append(", ".join(f"{n} {s}" for s, n in counts.items()) or "no hidden check ran")
        if error is not None:
            lines.append(f"--- pytest's output ({error}) ---\n{result.output}")
        return "\n".join(lines)

    def _check_finish(self, finish: dict[str, Any], result: SandboxResult, collected: list[str]) -> None:
        if finish.get("patched"):
            self.flag(f"pytest internals were replaced during the run: {', '.join(finish['patched'])}")
        if finish.get("plugins"):
            self.flag(
                f"a pytest plugin was registered by the code under test: {', '.join(finish['plugins'])}"
            )
        if finish.get("status") != result.exit_code:
            status = finish.get("status")
            self.flag(f"pytest finished with status {status} but the process exited {result.exit_code}")
        unreported = [c for c in collected if self.status(c) == "missing"]
        if unreported:
            self.flag(f"{len(unreported)} collected checks were never reported, e.g. {unreported[0]}")
        expected = {
            **dict.fromkeys(self.sentinels.must_pass, "passed"),
            **dict.fromkeys(self.sentinels.must_fail, "failed"),
        }
        for check, result_known in sorted(expected.items()):
            if self.status(check) != result_known:
                self.flag(f"a sentinel check that must have {result_known} came out {self.status(check)}")
