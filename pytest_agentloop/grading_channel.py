"""One sandboxed run of a canary's hidden checks, read through a channel pushed code cannot forge.

The checks run as `python -P -m pytest` in the sandbox (no `/proc` in it) with the harness's plugin
(grader_plugin.py) loaded by `-p` before any test module. Two inherited pipes connect them, and no
path or secret is in the environment: the plugin reads its configuration from the first (a random
key, the channel's fd, the sentinel checks' sources) and closes it before any pushed code runs; it
writes its events to the second, which a harness thread reads while the checks run. Every line is
numbered and chained with HMAC-SHA256 under the key, which only the plugin's audit hook holds: a
line the harness cannot verify, a gap or a line out of order is tampering, and so is every line
after it. Then the run is checked:

- **first-hand results**: the plugin calls each test function itself and says whether it raised;
  a check reported passed whose function raised, or never ran, was tampered with;
- **sentinels**: two in-memory modules of two checks each, per-run random names, one check that
  must pass and one that must fail, at random module boundaries among the real checks; nothing on
  disk names them;
- **counts**: every collected check reported exactly once per phase, nothing reported that was not
  collected, nothing written after pytest finished, the process's exit status equal to pytest's;
- **internals**: the plugin checks at every report that pytest's internals, the deciding hook
  implementations and the item itself are the ones collected, and that the report came from
  pytest's own call chain; its audit hook ends the process (after a `tampered` line) on the
  introspection and native access that could reach the reporter;
- **the checks on disk**: the hidden files are compared, byte for byte, after the run.

A tampered run is reported as such, never scored as a pass.
"""

from __future__ import annotations

import hashlib
import hmac
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

from pytest_agentloop.canary import Canary
from pytest_agentloop.sandbox import SandboxPolicy, SandboxResult, interpreter, run_sandboxed

HIDDEN_DIR = ".agentloop_hidden"
PLUGIN_MODULE = "agentloop_grader"
# The plugin's source, copied into the sandbox; never imported here (it installs an audit hook).
PLUGIN_SOURCE = Path(__file__).with_name("grader_plugin.py")
CONFIG_ENV = "AGENTLOOP_GRADER_CONFIG"  # grader_plugin.CONFIG_ENV: the fd of the configuration pipe
_CHANNEL_CAP = 16 * 1024 * 1024  # bytes; a real run of a few hundred checks writes well under 1 MB
_PIPE_BUF = 65536  # what a pipe holds before a writer blocks (the configuration is written up front)
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
    """A pipe read by a thread into a bounded buffer while the sandbox runs.

    The harness keeps the write end it passed into the sandbox until the sandbox has ended, so the
    reader never sees end-of-file early; closing it then lets the reader finish.
    """

    def __init__(self) -> None:
        self._read, self.write = os.pipe()
        self._writing = True
        self.data = bytearray()
        self.flooded = False
        self._thread = threading.Thread(target=self._pump, name="agentloop-grading-channel", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while True:
            ready, _, _ = select.select([self._read], [], [], _POLL_S)
            if not ready:
                continue
            chunk = os.read(self._read, 65536)
            if not chunk:
                return
            if len(self.data) + len(chunk) > _CHANNEL_CAP:
                self.flooded = True
            else:
                self.data += chunk

    def close(self) -> bool:
        """Stop after the sandbox ended; False when some writer still held the channel open."""
        if self._writing:
            os.close(self.write)
            self._writing = False
        self._thread.join(_DRAIN_S)
        drained = not self._thread.is_alive()
        if drained:
            os.close(self._read)
        return drained


def _config_pipe(config: dict[str, Any]) -> int:
    """A pipe already holding the plugin's configuration, write end closed: the read end to pass in."""
    data = json.dumps(config).encode()
    if len(data) >= _PIPE_BUF:
        raise ValueError(f"the grader's configuration is {len(data)} bytes, over a pipe's {_PIPE_BUF}")
    read, write = os.pipe()
    try:
        os.write(write, data)
    finally:
        os.close(write)
    return read


@dataclass(frozen=True)
class _Sentinels:
    files: dict[str, str]  # file name (as if in the hidden folder; never written) -> source
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

    def config(self) -> list[dict[str, str]]:
        return [{"name": name, "source": source} for name, source in self.files.items()]


def run_hidden(canary: Canary, tree: Path, limits: SandboxPolicy) -> Tally:
    """Copy the canary's hidden checks into `tree` (an export) and run them there, sandboxed."""
    hidden = tree / HIDDEN_DIR
    if hidden.exists() or hidden.is_symlink():
        raise FileExistsError(f"{hidden} already exists")
    for name, content in canary.hidden_files.items():
        path = hidden / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    sentinels = _Sentinels.make()
    key = secrets.token_bytes(32)
    with tempfile.TemporaryDirectory(prefix="agentloop-grader-") as scratch:
        harness = Path(scratch)
        shutil.copyfile(PLUGIN_SOURCE, harness / f"{PLUGIN_MODULE}.py")
        ini = harness / "checks.ini"
        ini.write_text(f"[pytest]\npythonpath = {tree}\n", encoding="utf-8")
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
            *(f"{HIDDEN_DIR}/{name}" for name in canary.hidden_tests),
        ]
        env = {
            "PYTHONPATH": str(harness),
            CONFIG_ENV: "3",
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        }
        timeout = replace(limits, timeout_s=canary.spec.checks.timeout)
        # Passed in as fds 3 (the configuration) and 4 (the channel): see sandbox.run_sandboxed.
        config = _config_pipe({"key": key.hex(), "channel": 4, "sentinels": sentinels.config()})
        channel = _Channel()
        try:
            # The export and the checks are read-only inside: nothing the code under test does can
            # change a check or the tree being graded. No /proc: no process's memory, environment or
            # fds to open. The harness folder holds the plugin and the ini file.
            result = run_sandboxed(
                command,
                tree,
                timeout,
                env=env,
                visible=(tree, harness),
                pass_fds=(config, channel.write),
                mount_proc=False,
            )
        finally:
            os.close(config)
            drained = channel.close()
        tally = read_events(bytes(channel.data), result, sentinels, canary, key)
    if channel.flooded:
        tally.tampered = tally.tampered or "the result channel was flooded"
    elif not drained:
        tally.tampered = tally.tampered or "a process kept the result channel open after the run"
    rewritten = _rewritten(hidden, canary.hidden_files)
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


def read_events(
    data: bytes, result: SandboxResult, sentinels: _Sentinels, canary: Canary, key: bytes
) -> Tally:
    """Check by check, from the channel's verified lines; the first sign of tampering is the reason.

    Reading stops at the first line that does not verify: nothing after it can be trusted. A last
    line cut short by the sandbox killing the run is not tampering (the run did not complete).
    """
    reader = _Reader(sentinels)
    chain = _Chain(key)
    lines = data.split(b"\n")
    for number, line in enumerate(lines):
        if not line.strip() and number == len(lines) - 1:
            break
        event = chain.open(line)
        if event is None:
            if number < len(lines) - 1 or result.killed is None:
                reader.flag(f"line {number + 1} of the result channel was not written by the grader")
            break
        reader.feed(event)
    return reader.tally(result, canary)


class _Chain:
    """The lines of one run: `<json> <hex mac>`, MAC = HMAC-SHA256(key, previous MAC + json), `n` from 0."""

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.mac = bytes(32)
        self.sequence = 0

    def open(self, line: bytes) -> dict[str, Any] | None:
        """The event on this line, or None when its MAC or sequence number does not follow."""
        payload, _, tag = line.rpartition(b" ")
        expected = hmac.new(self.key, self.mac + payload, hashlib.sha256).digest()
        if not hmac.compare_digest(expected.hex().encode(), tag):
            return None
        try:
            event = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(event, dict) or event.get("n") != self.sequence:
            return None
        self.mac, self.sequence = expected, self.sequence + 1
        return event


class _Reader:
    def __init__(self, sentinels: _Sentinels) -> None:
        self.sentinels = sentinels
        self.collected: list[str] | None = None
        self.phases: dict[str, dict[str, dict[str, Any]]] = {}
        self.collect_errors: dict[str, str] = {}
        self.collect_text: dict[str, str] = {}
        self.finish: dict[str, Any] | None = None
        self.tampered: str | None = None
        self.functions: set[str] = set()  # checks whose test function the plugin calls itself
        self.raised: dict[str, bool] = {}  # check -> whether its test function raised (first-hand)

    def flag(self, why: str) -> None:
        self.tampered = self.tampered or why

    def feed(self, event: dict[str, Any]) -> None:
        kind = event.get("e")
        if self.finish is not None:
            self.flag(f"a {kind!r} event was written after pytest finished")
            return
        if kind == "hello":
            return
        if kind == "tampered":
            self.flag(str(event.get("why")))
        elif kind == "ran":
            check = str(event.get("id"))
            if check in self.raised:
                self.flag(f"the test function of {check} ran twice")
            self.raised[check] = bool(event.get("raised"))
            return
        elif kind == "collect_error":
            self.collect_errors[str(event.get("id"))] = str(event.get("msg", ""))
            self.collect_text[str(event.get("id"))] = str(event.get("text", ""))
        elif kind == "collected":
            if self.collected is not None:
                self.flag("the checks were announced twice")
            self.collected = [str(i) for i in event.get("ids", [])]
            self.functions = {str(i) for i in event.get("functions", [])}
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
        for check in collected:
            call = self.phases.get(check, {}).get("call")
            passed = call is not None and call["outcome"] == "passed"
            if passed and check in self.functions and self.raised.get(check, True):
                ran = "raised" if check in self.raised else "never ran"
                self.flag(f"{check} was reported passed but its test function {ran}")
        expected = {
            **dict.fromkeys(self.sentinels.must_pass, "passed"),
            **dict.fromkeys(self.sentinels.must_fail, "failed"),
        }
        for check, result_known in sorted(expected.items()):
            if self.status(check) != result_known:
                self.flag(f"a sentinel check that must have {result_known} came out {self.status(check)}")
