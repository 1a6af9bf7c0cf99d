"""The SQL side of the results history: one schema, two dialects (SQLite and PostgreSQL), one connection.

SQLite (a file, the default) serves one person; PostgreSQL serves a team, CI shards and Grafana.
Every write is its own transaction, so nothing finished is ever held back uncommitted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

DEFAULT_URL = "sqlite:///.agentloop/results.db"
BUSY_TIMEOUT_S = 60.0
SCHEMA_LOCK_ID = 0x6167_6C70  # "aglp": serializes schema creation between PostgreSQL sessions


class StoreError(Exception):
    """The store URL or database is unusable; the message names it and the fix."""


@dataclass(frozen=True)
class Dialect:
    """The few places where SQLite and PostgreSQL differ."""

    name: str
    placeholder: str
    serial: str
    timestamp: str


SQLITE = Dialect("sqlite", "?", "INTEGER PRIMARY KEY AUTOINCREMENT", "TEXT")
POSTGRES = Dialect("postgresql", "%s", "BIGSERIAL PRIMARY KEY", "TIMESTAMPTZ")

SCHEMA = """
CREATE TABLE IF NOT EXISTS agentloop_runs (
    run_id TEXT PRIMARY KEY,
    started {ts} NOT NULL,
    finished {ts},
    harness_version TEXT,
    harness_commit TEXT,
    host TEXT,
    info TEXT
);
CREATE TABLE IF NOT EXISTS agentloop_attempts (
    id {serial},
    run_id TEXT NOT NULL REFERENCES agentloop_runs(run_id),
    canary TEXT NOT NULL,
    tier TEXT NOT NULL,
    model TEXT NOT NULL,
    cell TEXT NOT NULL,
    repetition INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    passed INTEGER NOT NULL,
    budget_limit TEXT,
    turns INTEGER,
    tokens INTEGER,
    wall_s DOUBLE PRECISION NOT NULL,
    model_s DOUBLE PRECISION NOT NULL,
    canary_hash TEXT NOT NULL,
    model_digest TEXT NOT NULL,
    quantization TEXT,
    runtime TEXT,
    cell_key TEXT NOT NULL,
    cell_config TEXT NOT NULL,
    host TEXT,
    started {ts},
    finished {ts},
    record TEXT NOT NULL,
    UNIQUE (run_id, canary, model, cell, repetition)
);
CREATE INDEX IF NOT EXISTS agentloop_attempts_history ON agentloop_attempts (model, canary, cell);
CREATE INDEX IF NOT EXISTS agentloop_attempts_resume
    ON agentloop_attempts (canary_hash, model_digest, cell_key, repetition);
CREATE TABLE IF NOT EXISTS agentloop_probes (
    id {serial},
    run_id TEXT NOT NULL,
    model TEXT NOT NULL,
    model_digest TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    answer TEXT NOT NULL,
    recorded {ts} NOT NULL
);
"""

ATTEMPT_COLUMNS = (
    "run_id, canary, tier, model, cell, repetition, outcome, passed, budget_limit, turns, tokens, wall_s, "
    "model_s, canary_hash, model_digest, quantization, runtime, cell_key, cell_config, host, started, "
    "finished, record"
)


class Database:
    """A connection and its dialect: statements written with `?` run on either database."""

    def __init__(self, connection: Any, dialect: Dialect, url: str) -> None:
        self._db = connection
        self.dialect = dialect
        self.url = url
        self._create_schema()

    def _create_schema(self) -> None:
        """One transaction; on PostgreSQL under an advisory lock, since concurrent CREATE IF NOT EXISTS
        races there (two sessions starting at once would otherwise collide on the catalog)."""
        ddl = SCHEMA.format(ts=self.dialect.timestamp, serial=self.dialect.serial)
        cursor = self._db.cursor()
        try:
            if self.dialect is POSTGRES:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK_ID,))
            for statement in filter(None, (part.strip() for part in ddl.split(";"))):
                cursor.execute(statement)
            self._db.commit()
        except Exception:
            self._db.rollback()
            raise

    def ts(self, value: datetime | None) -> Any:
        if value is None or self.dialect is POSTGRES:
            return value
        return value.isoformat()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.dialect.placeholder)

    def execute(self, sql: str, params: Sequence[Any], *, raw_marks: bool = False) -> Any:
        """One statement in its own transaction: nothing finished is ever held back uncommitted."""
        try:
            cursor = self._db.cursor()
            cursor.execute(sql if raw_marks else self._sql(sql), tuple(params))
            self._db.commit()
            return cursor
        except Exception:
            self._db.rollback()
            raise

    def query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cursor = self._db.cursor()
        cursor.execute(self._sql(sql), tuple(params))
        rows = [tuple(row) for row in cursor.fetchall()]
        self._db.commit()  # end the read transaction: PostgreSQL would otherwise hold it open
        return rows

    def close(self) -> None:
        self._db.close()


def connect(url: str, base: Path | None = None) -> Database:
    """`sqlite:///relative/or/absolute.db` (relative to `base`) or `postgresql://user@host/db`."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level="DEFERRED")
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the results store {path} ({exc}); pass a writable path") from None
        return Database(connection, SQLITE, url)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                "a postgresql:// store needs psycopg: run `pip install 'psycopg[binary]'`"
            ) from None
        try:
            server = psycopg.connect(url, connect_timeout=10)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise StoreError(f"cannot connect to the results store {url}: {first}") from None
        return Database(server, POSTGRES, url)
    raise StoreError(
        f"results store URL {url!r} is neither sqlite:///PATH nor postgresql://...; "
        f"e.g. --agent-store={DEFAULT_URL}"
    )
