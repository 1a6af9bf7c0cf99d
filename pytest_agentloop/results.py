"""The controller's one owner of a run's attempts, its journal, and the results file compacted from it.

Attempts reach the controller on their TestReports (under pytest-xdist too) and are added here, once:
every reader (terminal summary, decide view, HTML, cards, gates) reads `Results.attempts`, and the
writers behind it (the results store) are told of each new attempt by the owner, so data flows one way.

Each arrival appends one JSON line to the journal beside the results file (`PATH.journal.jsonl`) and
its transcript to `PATH.transcripts.jsonl`: the cost per attempt is one appended line, whatever the
run's size. The `agentloop.results/1` file is compacted from the journal when the session ends (or by
`agentloop report` after a killed run), so the journal is the source and nothing finished is lost.
A lock beside the file keeps a second live run off the same path.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from pytest_agentloop import __version__
from pytest_agentloop.analysis.facts import transcript_facts
from pytest_agentloop.records import RESULTS_SCHEMA, Attempt, Transcript

IDENTITY_FIELDS = ("canary", "model", "cell", "repetition")  # one attempt of a run


class ResultsError(Exception):
    """The results file cannot be written as asked; the message names the path and the fix."""


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def harness_commit() -> str | None:
    """The git commit of the harness source, when it runs from a checkout (the audit trail)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_info(extra: dict[str, Any]) -> dict[str, Any]:
    """What the run section of a results file (and the store's run row) says about where it ran.

    `machine` is the finding card's "where it ran": kept here so cards rebuilt later by `agentloop
    report --cards` say what the live ones said.
    """
    from pytest_agentloop.report.card import host_fingerprint

    return {
        "started": datetime.now(UTC).isoformat(),
        "harness_version": __version__,
        "harness_commit": harness_commit(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "machine": host_fingerprint(),
        "argv": sys.argv[1:],
        **extra,
    }


def attempt_identity(attempt: Attempt) -> tuple[Any, ...]:
    """Which attempt of its run this is: no run holds two with the same identity."""
    return tuple(getattr(attempt, k) for k in IDENTITY_FIELDS)


def transcripts_beside(results_path: Path) -> Path:
    """`results.json` -> `results.transcripts.jsonl`, where the run appended each attempt's transcript."""
    return results_path.with_name(results_path.stem + ".transcripts.jsonl")


def journal_beside(results_path: Path) -> Path:
    """`results.json` -> `results.journal.jsonl`: the run's header, then one attempt record per line."""
    return results_path.with_name(results_path.stem + ".journal.jsonl")


class Results:
    """All attempts of this run (one per identity, in arrival order); journaled beside `path` if given.

    The attempts are held without their transcripts (most of an attempt's size): each transcript is
    appended to the transcripts file (an anonymous temporary file when the run has no path) and read
    back one at a time by `transcript_of`; the analyses read their counts (analysis/facts.py), kept
    in memory. So the controller's footprint is a few KB per attempt however long the campaign.
    """

    def __init__(self, run: dict[str, Any], path: Path | None = None) -> None:
        self.run = run
        self.path = path
        self._held: dict[tuple[Any, ...], Attempt] = {}
        self._where: dict[tuple[Any, ...], int] = {}  # identity -> offset of its transcript line
        self._writers: list[Callable[[Attempt], None]] = []
        self._journal: IO[str] | None = None
        self._transcripts: IO[bytes] | None = None
        self._lock: Any = None
        if path is not None:
            self._open(path)
        else:
            self._transcripts = tempfile.TemporaryFile(prefix="agentloop-transcripts-")  # noqa: SIM115 (closed by close)

    def _open(self, path: Path) -> None:
        """Lock the path, then continue this run's journal there or start a new one."""
        import filelock

        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(path.with_name(path.name + ".lock")), timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise ResultsError(
                f"{path} is being written by another running session; pass another --agent-json PATH "
                "(or let that run finish)"
            ) from None
        self._lock = lock
        journal = journal_beside(path)
        earlier_run, earlier = read_journal(journal) if journal.is_file() else ({}, [])
        if earlier_run.get("run_id") is not None and earlier_run.get("run_id") == self.run.get("run_id"):
            for attempt in earlier:  # the same run continues: keep everything it finished
                self._held[attempt_identity(attempt)] = attempt
            self._journal = journal.open("a", encoding="utf-8")
        else:  # a new run on this path replaces the files of the one before, as a new results file did
            self._journal = journal.open("w", encoding="utf-8")
            self._append(self._journal, {"run": self.run})
            transcripts_beside(path).unlink(missing_ok=True)
        self._transcripts = transcripts_beside(path).open("a+b")

    @property
    def attempts(self) -> list[Attempt]:
        return list(self._held.values())

    def __len__(self) -> int:
        return len(self._held)

    def subscribe(self, writer: Callable[[Attempt], None]) -> None:
        """`writer` is told of every attempt added from now on (the results store is one)."""
        self._writers.append(writer)

    def seed(self, earlier: Iterable[Attempt]) -> None:
        """Take in a resumed run's attempts from an earlier session (the store's) that the journal lacks;
        journaled, but not passed to the writers, which already hold them."""
        for attempt in earlier:
            key = attempt_identity(attempt)
            if key not in self._held:
                self._held[key] = attempt
                if self._journal is not None:
                    self._append(self._journal, {"attempt": attempt.to_record()})

    def add(self, attempt: Attempt) -> None:
        """Take one finished attempt (replacing an earlier one with its identity) and pass it on."""
        key = attempt_identity(attempt)
        self._held.pop(key, None)
        self._where.pop(key, None)
        if self._journal is not None:
            self._append(self._journal, {"attempt": attempt.to_record()})
        if attempt.transcript is not None and self._transcripts is not None:
            identity = dict(zip(IDENTITY_FIELDS, key, strict=True))
            row = {**identity, "transcript": attempt.transcript.model_dump(mode="json")}
            self._where[key] = self._transcripts.seek(0, os.SEEK_END)
            self._transcripts.write(json.dumps(row).encode() + b"\n")
            self._transcripts.flush()  # a killed run keeps every line it finished
            self._held[key] = attempt.without_transcript(transcript_facts(attempt.transcript))
        else:
            self._held[key] = attempt
        for writer in self._writers:
            writer(attempt)

    def transcript_of(self, attempt: Attempt) -> Transcript | None:
        """The attempt's transcript, read back from the transcripts file (or the one it carries)."""
        offset = self._where.get(attempt_identity(attempt))
        if offset is None or self._transcripts is None:
            return attempt.transcript
        self._transcripts.seek(offset)
        return Transcript.model_validate(json.loads(self._transcripts.readline())["transcript"])

    @staticmethod
    def _append(handle: IO[str], row: dict[str, Any]) -> None:
        handle.write(json.dumps(row) + "\n")
        handle.flush()  # a killed run keeps every line it finished

    def compact(self) -> None:
        """Write the results file from what the run holds (at session end: once, not per attempt)."""
        if self.path is not None:
            write_results(self.path, self.run, self.attempts)

    def close(self) -> None:
        for handle in (self._journal, self._transcripts):
            if handle is not None:
                handle.close()
        self._journal = self._transcripts = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def document(run: dict[str, Any], attempts: list[Attempt]) -> dict[str, Any]:
    """The results file's content (what `write_results` writes, one attempt at a time)."""
    return {**_frame(run, attempts), "attempts": [attempt.to_record() for attempt in attempts]}


def _frame(run: dict[str, Any], attempts: list[Attempt]) -> dict[str, Any]:
    """The document with its attempt records left out: the run section, summary and diagnoses."""
    from pytest_agentloop.analysis.diagnosis import pooled_ceiling_diagnoses
    from pytest_agentloop.analysis.verdicts import summarize

    return {
        "schema": RESULTS_SCHEMA,
        "run": {**run, "updated": datetime.now(UTC).isoformat(), "attempt_count": len(attempts)},
        "attempts": None,
        "summary": [asdict(row) for row in summarize(attempts)],
        # the ceiling over each model's over-budget canaries together, as the terminal shows it
        "pooled_diagnoses": [asdict(d) for d in pooled_ceiling_diagnoses(attempts)],
    }


def write_results(path: Path, run: dict[str, Any], attempts: list[Attempt]) -> None:
    """The `agentloop.results/1` file, replaced atomically: `json.dumps(document(...), indent=1)` byte
    for byte, but written one attempt at a time, so compacting 100,000 attempts never holds all their
    records (or the whole text) at once."""
    mark = f"agentloop-attempts-{uuid.uuid4().hex}"
    head, _, tail = json.dumps({**_frame(run, attempts), "attempts": mark}, indent=1).partition(f'"{mark}"')
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as out:
        out.write(head)
        for index, attempt in enumerate(attempts):  # each record as json.dumps nests it, two levels in
            text = json.dumps(attempt.to_record(), indent=1).replace("\n", "\n  ")
            out.write(("[\n  " if index == 0 else ",\n  ") + text)
        out.write("\n ]" if attempts else "[]")
        out.write(tail)
    os.replace(tmp, path)


def read_journal(path: Path) -> tuple[dict[str, Any], list[Attempt]]:
    """The run header and its attempts (the last line per identity wins). A line a kill cut short at
    the end is left out; anything else unreadable is an error naming the line."""
    run: dict[str, Any] = {}
    held: dict[tuple[Any, ...], Attempt] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number}: not a journal line") from None
        if "run" in row:
            run = row["run"]
        elif "attempt" in row:
            attempt = Attempt.from_record(row["attempt"])
            held.pop(attempt_identity(attempt), None)
            held[attempt_identity(attempt)] = attempt
    return run, list(held.values())


def compact_journal(path: Path) -> int | None:
    """Write the results file from its journal when the file is missing or holds fewer attempts (a
    killed run); returns how many attempts it wrote, None when there was nothing to do."""
    journal = journal_beside(path)
    if not journal.is_file():
        return None
    run, attempts = read_journal(journal)
    try:
        current = json.loads(path.read_text(encoding="utf-8")).get("run", {}).get("attempt_count")
    except (OSError, json.JSONDecodeError):
        current = None
    if current is not None and current >= len(attempts):
        return None
    write_results(path, run, attempts)
    return len(attempts)


def load_results(path: Path, *, transcripts: bool = False) -> tuple[dict[str, Any], list[Attempt]]:
    """Read a results file back (for re-analysis, reports, the combined cell).

    With `transcripts`, each attempt gets its transcript from the file beside it when there is one:
    the wasted-turn profile (no-op edits, prose turns) needs them; the combined cell does not.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable results file ({exc})") from None
    if data.get("schema") != RESULTS_SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r} is not {RESULTS_SCHEMA!r}")
    attempts = [Attempt.from_record(row) for row in data.get("attempts", [])]
    beside = transcripts_beside(path)
    if transcripts and beside.is_file():
        attempts = _with_transcripts(attempts, beside)
    return data.get("run", {}), attempts


def _with_transcripts(attempts: list[Attempt], path: Path) -> list[Attempt]:
    found: dict[tuple[Any, ...], Transcript] = {}
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # the last line of a killed run
                continue
            key = tuple(row[k] for k in IDENTITY_FIELDS)
            found[key] = Transcript.model_validate(row["transcript"])
    return [a.model_copy(update={"transcript": found.get(attempt_identity(a))}) for a in attempts]
