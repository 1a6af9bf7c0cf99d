"""The controller's collection of finished attempts and the results file written as they arrive.

Attempts reach the controller on their TestReports (under pytest-xdist too). Every arrival
rewrites the results file atomically, so a run killed halfway keeps every attempt it finished.
Transcripts, which can be large, go to a JSON-lines file beside it, appended once per attempt.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_agentloop import __version__
from pytest_agentloop.records import RESULTS_SCHEMA, Attempt, Transcript

IDENTITY_FIELDS = ("canary", "model", "cell", "repetition")  # one attempt of a run


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


class Results:
    """All attempts of this run, in arrival order; optionally mirrored to a results file."""

    def __init__(self, run: dict[str, Any], path: Path | None = None) -> None:
        self.run = run
        self.path = path
        self.attempts: list[Attempt] = []
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.transcripts_path.unlink(missing_ok=True)
            self.write()

    @property
    def transcripts_path(self) -> Path:
        assert self.path is not None
        return transcripts_beside(self.path)

    def seed(self, earlier: list[Attempt]) -> None:
        """Start from a resumed run's earlier attempts (the store's), so the file holds the whole run."""
        self.attempts = list(earlier)

    def add(self, attempt: Attempt) -> None:
        """Append, or replace the attempt with the same identity (one a resumed run seeded)."""
        key = attempt_identity(attempt)
        self.attempts = [a for a in self.attempts if attempt_identity(a) != key] + [attempt]
        if self.path is not None:
            self._append_transcript(attempt)
            self.write()

    def document(self) -> dict[str, Any]:
        from pytest_agentloop.analysis.diagnosis import pooled_ceiling_diagnoses
        from pytest_agentloop.analysis.verdicts import summarize

        return {
            "schema": RESULTS_SCHEMA,
            "run": {
                **self.run,
                "updated": datetime.now(UTC).isoformat(),
                "attempt_count": len(self.attempts),
            },
            "attempts": [attempt.to_record() for attempt in self.attempts],
            "summary": [asdict(row) for row in summarize(self.attempts)],
            # the ceiling over each model's over-budget canaries together, as the terminal shows it
            "pooled_diagnoses": [asdict(d) for d in pooled_ceiling_diagnoses(self.attempts)],
        }

    def write(self) -> None:
        assert self.path is not None
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.document(), indent=1), encoding="utf-8")
        os.replace(tmp, self.path)

    def _append_transcript(self, attempt: Attempt) -> None:
        if attempt.transcript is None:
            return
        key = dict(zip(IDENTITY_FIELDS, attempt_identity(attempt), strict=True))
        line = json.dumps({**key, "transcript": attempt.transcript.model_dump(mode="json")})
        with self.transcripts_path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")


def attempt_identity(attempt: Attempt) -> tuple[Any, ...]:
    """Which attempt of its run this is: no run holds two with the same identity."""
    return tuple(getattr(attempt, k) for k in IDENTITY_FIELDS)


def transcripts_beside(results_path: Path) -> Path:
    """`results.json` -> `results.transcripts.jsonl`, where the run appended each attempt's transcript."""
    return results_path.with_name(results_path.stem + ".transcripts.jsonl")


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
            row = json.loads(line)
            key = tuple(row[k] for k in IDENTITY_FIELDS)
            found[key] = Transcript.model_validate(row["transcript"])
    return [a.model_copy(update={"transcript": found.get(attempt_identity(a))}) for a in attempts]
