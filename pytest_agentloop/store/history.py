"""Results history: every finished attempt with its audit trail, written and read back.

Weeks later someone asks "did the new quant of this model get worse?"; the answer needs each
attempt together with exactly what was evaluated (canary content hash, model digest and
quantization, runtime, cell config, harness commit, host).

Each attempt is written in its own transaction the moment it reaches the controller, so a
killed run keeps everything it finished; `(run_id, canary, model, cell, repetition)` is unique,
so a write repeated after a crash or a resume never duplicates a row.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_agentloop.analysis.regressions import RunRate
from pytest_agentloop.records import Attempt, Outcome
from pytest_agentloop.store.sql import ATTEMPT_COLUMNS, Database, connect


def model_digest(model: str, model_info: Mapping[str, Any]) -> str:
    """What identifies the weights: the runtime's digest or the file's sha256, else the model name."""
    for key in ("digest", "sha256"):
        value = model_info.get(key)
        if value:
            return str(value)
    return model


def cell_key(cell: str, cell_config: Mapping[str, Any]) -> str:
    """Same id and same settings: a cell whose settings changed under the same id is a new cell."""
    text = json.dumps({"id": cell, "config": cell_config}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ResumeKey:
    """What makes a stored attempt reusable by `--agent-resume`."""

    canary_hash: str
    model_digest: str
    cell_key: str
    repetition: int

    @classmethod
    def of(cls, attempt: Attempt) -> ResumeKey:
        return cls(
            attempt.canary_hash,
            model_digest(attempt.model, attempt.model_info),
            cell_key(attempt.cell, attempt.cell_config),
            attempt.repetition,
        )


class Store:
    """The history's reads and writes; create with `open_store(url)`."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.dialect = db.dialect
        self.url = db.url

    # -- writing ------------------------------------------------------------------------------------

    def begin_run(self, run: Mapping[str, Any], run_id: str | None = None) -> str:
        """Record a run (or re-open an existing one) and return its id."""
        run_id = run_id or uuid.uuid4().hex[:12]
        self.db.execute(
            "INSERT INTO agentloop_runs (run_id, started, harness_version, harness_commit, host, info) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
            (
                run_id,
                self.db.ts(_parse_ts(run.get("started")) or datetime.now(UTC)),
                run.get("harness_version"),
                run.get("harness_commit"),
                run.get("host"),
                json.dumps(dict(run), default=str),
            ),
        )
        return run_id

    def finish_run(self, run_id: str) -> None:
        self.db.execute(
            "UPDATE agentloop_runs SET finished = ? WHERE run_id = ?", (self.db.ts(datetime.now(UTC)), run_id)
        )

    def add(self, run_id: str, attempt: Attempt) -> bool:
        """Write one attempt; False when this run already holds it (a repeated write is harmless)."""
        info = attempt.model_info
        values = (
            run_id,
            attempt.canary,
            attempt.tier,
            attempt.model,
            attempt.cell,
            attempt.repetition,
            attempt.outcome.value,
            int(attempt.outcome is Outcome.PASSED),
            attempt.limit.value if attempt.limit else None,
            attempt.turns,
            attempt.tokens,
            attempt.wall_s,
            attempt.model_s,
            attempt.canary_hash,
            model_digest(attempt.model, info),
            info.get("quantization"),
            info.get("runtime"),
            cell_key(attempt.cell, attempt.cell_config),
            json.dumps(attempt.cell_config, sort_keys=True),
            attempt.host,
            self.db.ts(attempt.started),
            self.db.ts(attempt.finished),
            json.dumps(attempt.to_record()),
        )
        marks = ", ".join([self.dialect.placeholder] * len(values))
        cursor = self.db.execute(
            f"INSERT INTO agentloop_attempts ({ATTEMPT_COLUMNS}) VALUES ({marks}) "
            "ON CONFLICT (run_id, canary, model, cell, repetition) DO NOTHING",
            values,
            raw_marks=True,
        )
        return bool(cursor.rowcount)

    def add_probe(self, run_id: str, model: str, digest: str, prompt_hash: str, answer: str) -> None:
        self.db.execute(
            "INSERT INTO agentloop_probes (run_id, model, model_digest, prompt_hash, answer, recorded) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, model, digest, prompt_hash, answer, self.db.ts(datetime.now(UTC))),
        )

    # -- reading ------------------------------------------------------------------------------------

    def has_run(self, run_id: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM agentloop_runs WHERE run_id = ?", (run_id,)))

    def open_run_with(self, settings_key: str) -> str | None:
        """The latest unfinished run whose settings match: what a bare `--agent-resume` continues.
        Never another open run (another model, another live CI job): those have other settings."""
        rows = self.db.query(
            "SELECT run_id, info FROM agentloop_runs WHERE finished IS NULL ORDER BY started DESC", ()
        )
        for run_id, info in rows:
            if json.loads(info or "{}").get("settings_key") == settings_key:
                return str(run_id)
        return None

    def stored_keys(self, run_id: str) -> set[ResumeKey]:
        rows = self.db.query(
            "SELECT canary_hash, model_digest, cell_key, repetition FROM agentloop_attempts WHERE run_id = ?",
            (run_id,),
        )
        return {ResumeKey(str(a), str(b), str(c), int(d)) for a, b, c, d in rows}

    def attempts(self, run_id: str | None = None, model: str | None = None) -> list[Attempt]:
        """Stored attempts (without transcripts), oldest first; all runs when `run_id` is None."""
        where, params = _filters(run_id=run_id, model=model)
        rows = self.db.query(f"SELECT record FROM agentloop_attempts{where} ORDER BY id", params)
        return [Attempt.from_record(json.loads(row[0])) for row in rows]

    def runs(self) -> list[dict[str, Any]]:
        rows = self.db.query(
            "SELECT r.run_id, r.started, r.finished, r.harness_version, r.harness_commit, r.host, "
            "COUNT(a.id) FROM agentloop_runs r LEFT JOIN agentloop_attempts a ON a.run_id = r.run_id "
            "GROUP BY r.run_id, r.started, r.finished, r.harness_version, r.harness_commit, r.host "
            "ORDER BY r.started",
            (),
        )
        names = ("run_id", "started", "finished", "harness_version", "harness_commit", "host", "attempts")
        return [dict(zip(names, (_text(v) for v in row), strict=True)) for row in rows]

    def run_info(self, run_id: str) -> dict[str, Any]:
        """The run section recorded when the run began (harness, host, machine, settings)."""
        rows = self.db.query("SELECT info FROM agentloop_runs WHERE run_id = ?", (run_id,))
        return json.loads(rows[0][0]) if rows and rows[0][0] else {}

    def run_rates(self, exclude_run: str | None = None) -> dict[tuple[str, str, str], list[RunRate]]:
        """Per model × cell × canary, each earlier run's passes/n (infra errors excluded), oldest first."""
        rows = self.db.query(
            "SELECT a.model, a.cell, a.canary, a.run_id, r.started, SUM(a.passed), COUNT(*) "
            "FROM agentloop_attempts a JOIN agentloop_runs r ON r.run_id = a.run_id "
            "WHERE a.outcome <> 'infra_error' "
            "GROUP BY a.model, a.cell, a.canary, a.run_id, r.started ORDER BY r.started",
            (),
        )
        rates: dict[tuple[str, str, str], list[RunRate]] = defaultdict(list)
        for model, cell, canary, run_id, started, passes, n in rows:
            if run_id != exclude_run:
                rates[(model, cell, canary)].append(RunRate(run_id, _text(started), int(passes), int(n)))
        return dict(rates)

    def last_probe(self, model: str, prompt_hash: str, exclude_run: str) -> tuple[str, str, str] | None:
        """(run_id, model digest, answer) of the most recent probe of this model from another run."""
        rows = self.db.query(
            "SELECT run_id, model_digest, answer FROM agentloop_probes "
            "WHERE model = ? AND prompt_hash = ? AND run_id <> ? ORDER BY id DESC LIMIT 1",
            (model, prompt_hash, exclude_run),
        )
        return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None

    def close(self) -> None:
        self.db.close()


def _filters(**equal: str | None) -> tuple[str, tuple[str, ...]]:
    pairs = [(column, value) for column, value in equal.items() if value is not None]
    if not pairs:
        return "", ()
    return " WHERE " + " AND ".join(f"{column} = ?" for column, _ in pairs), tuple(v for _, v in pairs)


def _text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _parse_ts(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def open_store(url: str, base: Path | None = None) -> Store:
    """`sqlite:///relative/or/absolute.db` (relative to `base`) or `postgresql://user@host/db`."""
    return Store(connect(url, base))
