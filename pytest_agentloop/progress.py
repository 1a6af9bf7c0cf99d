"""Progress while a run runs: each attempt's turn i/N, tokens and time; outcome letters; server, gate lines.

One source, three outlets. The agent loop calls `turn_done` after every turn: that logs at INFO on
the `agentloop` logger (so `--log-cli-level=INFO` shows each turn) and hands the figures to the sink
the running item set. `ProgressReporter` is that sink: on a terminal it keeps one live status after
the item's place in the progress line, rewritten in place; without a terminal (CI logs) it writes a
plain line at most every PLAIN_EVERY_S per attempt. Under xdist the workers cannot reach the terminal
and xdist's channel carries only its own events, so each worker appends its turns as JSON lines to a
feed file the controller named in `workerinput`; a controller thread tails it (and each attempt's
report drains it first, so its turns come before its letter) and writes them as plain lines, or logs
them at INFO under --log-cli-level. An attempt that ran long also gets one line when it arrives.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytest

log = logging.getLogger("agentloop")
PLAIN_EVERY_S = 30.0  # without a terminal: at most one progress line per attempt this often
LONG_ATTEMPT_S = 30.0  # under xdist: attempts that ran longer get a line when they arrive
FEED_INPUT = "agentloop_progress_feed"  # the key of the feed file's path in xdist's workerinput
TAIL_EVERY_S = 0.5  # how often the controller reads the workers' feed
# Outcome -> (letter, word): the progress line's letters, and the legend under the session header.
LETTERS = {
    "passed": (".", "PASSED"),
    "failed": ("F", "FAILED"),
    "budget_exceeded": ("B", "BUDGET EXCEEDED"),
    "no_tool_calls": ("N", "NO TOOL CALLS"),
    "escalated": ("H", "ESCALATED"),
    "infra_error": ("E", "INFRA ERROR"),
}
LEGEND = (
    "agentloop letters: . passed  F failed  B budget exceeded  N no tool calls  H escalated  "
    "E infra error (not the model's)  s skipped (gate, resume, won't fit)"
)


@dataclass(frozen=True)
class TurnReport:
    """Where one attempt stands after a turn."""

    turn: int
    turns: int  # the turn budget
    tokens: int
    elapsed_s: float

    def text(self) -> str:
        return f"turn {self.turn}/{self.turns} · {self.tokens:,} tokens · {self.elapsed_s:.0f}s"


Sink = Callable[[str, TurnReport], None]
_current: ContextVar[tuple[str, Sink] | None] = ContextVar("agentloop_progress", default=None)


def turn_done(report: TurnReport) -> None:
    """Called by the agent loop after each turn: log it, and tell the running item's sink if any."""
    current = _current.get()
    label = current[0] if current else "attempt"
    log.info("%s: %s", label, report.text())
    if current is not None:
        current[1](label, report)


@contextmanager
def reporting(label: str, sink: Sink) -> Iterator[None]:
    """Route `turn_done` calls made inside this block (one item's attempt) to `sink`."""
    token = _current.set((label, sink))
    try:
        yield
    finally:
        _current.reset(token)


def announce(config: pytest.Config, message: str) -> None:
    """A line a person waits on (a model server starting, a gate's verdict): logged, and shown now."""
    log.info(message)
    reporter = config.pluginmanager.get_plugin("agentloop-progress")
    if reporter is not None:
        reporter.line(message)


class Feed:
    """The controller's end of the workers' progress: a file they append to, tailed by a thread."""

    def __init__(self, show: Callable[[str, TurnReport], None]) -> None:
        handle, name = tempfile.mkstemp(prefix="agentloop-progress-", suffix=".jsonl")
        os.close(handle)
        self.path = Path(name)
        self.show = show
        self.offset = 0
        self.lock = threading.Lock()  # the thread and the main thread drain (and write) one at a time
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._tail, name="agentloop-progress", daemon=True)
        self.thread.start()

    def _tail(self) -> None:
        while not self.stopped.wait(TAIL_EVERY_S):  # ends with the session (stop)
            self.drain()

    def drain(self) -> None:
        """Show every complete line written since the last drain."""
        with self.lock:
            try:
                with self.path.open("rb") as feed:
                    feed.seek(self.offset)
                    chunk = feed.read()
            except OSError:
                return
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self.offset += len(complete)
            for raw in complete.splitlines():
                try:
                    event = json.loads(raw)
                    report = TurnReport(**event["report"])
                    label = f"[{event['worker']}] {event['label']}"
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a dying worker: skip it, keep the rest
                self.show(label, report)

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.path.unlink(missing_ok=True)


def feed_line(worker: str, label: str, report: TurnReport) -> bytes:
    """One event of a worker's feed: a single short line, appended whole (O_APPEND)."""
    return json.dumps({"worker": worker, "label": label, "report": asdict(report)}).encode() + b"\n"


class ProgressReporter:
    """The terminal side: live status, plain lines, outcome letters and their legend."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.is_worker = hasattr(config, "workerinput")
        self.xdist = self.is_worker or bool(getattr(config.option, "numprocesses", None))
        self.status = ""  # the live status currently on screen
        self.last_plain = 0.0
        self.last_by_label: dict[str, float] = {}  # under xdist: each attempt's last plain line
        self.gates_shown: set[tuple[str, str]] = set()
        worker_input = getattr(config, "workerinput", {})
        self.feed_path: str | None = worker_input.get(FEED_INPUT)  # a worker: where its turns go
        self.feed = Feed(self._from_worker) if self.xdist and not self.is_worker else None

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist: tell each worker where to append its turns."""
        if self.feed is not None:
            node.workerinput[FEED_INPUT] = str(self.feed.path)

    def pytest_sessionfinish(self) -> None:
        if self.feed is not None:
            self.feed.stop()

    def _from_worker(self, label: str, report: TurnReport) -> None:
        """A worker's turn on the controller: logged under --log-cli-level, else a bounded plain line."""
        if self._log_cli():
            log.info("%s: %s", label, report.text())
            return
        now = time.monotonic()
        terminal = self._terminal()
        if terminal is not None and (
            report.turn == 1 or now - self.last_by_label.get(label, 0.0) >= PLAIN_EVERY_S
        ):
            self.last_by_label[label] = now
            # The controller runs no item, so nothing is captured here: write as it comes (any thread).
            terminal.write_line(f"  {label}: {report.text()}")

    def _to_feed(self, path: str, label: str, report: TurnReport) -> None:
        worker = self.config.workerinput["workerid"]  # type: ignore[attr-defined]
        try:
            with open(path, "ab") as feed:  # one append, closed at once
                feed.write(feed_line(worker, label, report))
        except OSError:
            self.feed_path = None  # a worker on another machine cannot reach it: no progress, no error

    def _terminal(self) -> Any:
        return None if self.is_worker else self.config.pluginmanager.get_plugin("terminalreporter")

    @contextmanager
    def _uncaptured(self) -> Iterator[None]:
        """Write past pytest's output capture, as live logging does, while an item runs."""
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            yield
            return
        with capture.global_and_fixture_disabled():
            yield

    def _live(self) -> bool:
        terminal = self._terminal()
        return terminal is not None and not self.xdist and terminal.isatty() and terminal.verbosity >= 0

    def line(self, text: str) -> None:
        """A plain line of its own (the live status, if any, is cleared first)."""
        terminal = self._terminal()
        if terminal is None or self._log_cli():
            return
        with self._uncaptured():
            self._erase(terminal)
            terminal.write_line(f"agentloop: {text}")

    def _log_cli(self) -> bool:
        """--log-cli-level already prints every INFO line: saying it twice is noise."""
        return bool(self.config.getoption("log_cli_level", None))

    def _on_turn(self, label: str, report: TurnReport) -> None:
        if self.feed_path is not None:
            self._to_feed(self.feed_path, label, report)
            return
        terminal = self._terminal()
        if terminal is None or self._log_cli():
            return
        with self._uncaptured():
            if self._live():
                self._erase(terminal)
                self.status = f" [{report.text()}]"
                terminal.write(self.status, flush=True)
            elif time.monotonic() - self.last_plain >= PLAIN_EVERY_S or report.turn == 1:
                self.last_plain = time.monotonic()
                self._erase(terminal)
                terminal.write_line(f"  {label}: {report.text()}")

    def _erase(self, terminal: Any) -> None:
        if self.status:
            width = len(self.status)
            terminal.write("\b" * width + " " * width + "\b" * width, flush=True)
            self.status = ""

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        if getattr(item, "canary", None) is None:
            return (yield)
        self.last_plain = 0.0
        with reporting(item.name, self._on_turn):
            return (yield)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Clear the live status before pytest writes the item's letter; say long attempts under xdist."""
        terminal = self._terminal()
        if terminal is None:
            return
        if self.feed is not None:
            self.feed.drain()  # this attempt's turns before its letter
        self._erase(terminal)
        record = getattr(report, "agentloop_attempt", None)
        if self.xdist and record and report.when == "call" and record.get("wall_s", 0) >= LONG_ATTEMPT_S:
            self.line(
                f"{report.nodeid.rpartition('::')[2]}: {record['outcome']} after {record['turns']} turns · "
                f"{(record['prompt_tokens'] or 0) + (record['completion_tokens'] or 0):,} tokens · "
                f"{record['wall_s']:.0f}s"
            )
        self._new_gates()

    def _new_gates(self) -> None:
        """Each smoke gate's verdict once, as soon as any process has written it."""
        from pytest_agentloop.state import runner_key

        runner = self.config.stash.get(runner_key, None)
        if runner is None or not runner.settings.smoke:
            return
        for result in runner.gate().results():
            key = (result.model, result.tool_mode)
            if key not in self.gates_shown:
                self.gates_shown.add(key)
                self.line(f"smoke gate {result.line()}")

    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, tuple[str, Any]] | None:
        """One letter per outcome, so the progress line tells a budget overrun from an infra error."""
        record = getattr(report, "agentloop_attempt", None)
        if record is None or report.when != "call" or record.get("outcome") not in LETTERS:
            return None
        letter, word = LETTERS[record["outcome"]]
        colour = {"passed": "green", "infra_error": "yellow", "budget_exceeded": "yellow"}.get(
            record["outcome"], "red"
        )
        return report.outcome, letter, (word, {colour: True})

    def pytest_report_header(self, config: pytest.Config) -> str | None:
        from pytest_agentloop.state import runner_key

        return LEGEND if config.stash.get(runner_key, None) is not None else None
