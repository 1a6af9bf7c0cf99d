"""Results history: every finished attempt with its audit trail, in SQLite or PostgreSQL.

Weeks later someone asks "did the new quant of this model get worse?"; the answer needs each
attempt together with exactly what was evaluated (canary content hash, model digest and
quantization, runtime, cell config, harness commit, host). One small SQL schema serves both
databases: SQLite (a file, the default) for one person, PostgreSQL for a team and Grafana.

Each attempt is written in its own transaction the moment it reaches the controller, so a
killed run keeps everything it finished; `(run_id, canary, model, cell, repetition)` is unique,
so a write repeated after a crash or a resume never duplicates a row.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_agentloop.analysis.stats import scored, wilson
from pytest_agentloop.records import Attempt, Outcome
from pytest_agentloop.results import attempt_identity

DEFAULT_URL = "sqlite:///.agentloop/results.db"
SIGMA_MIN_RUNS = 5  # below this many earlier runs, the interval rule replaces the 2-sigma rule
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


@dataclass(frozen=True)
class RunRate:
    """One earlier run's result for a model × canary × cell."""

    run_id: str
    started: str
    passes: int
    n: int

    @property
    def rate(self) -> float:
        return self.passes / self.n


@dataclass(frozen=True)
class Regression:
    model: str
    cell: str
    canary: str
    passes: int
    n: int
    historical_rate: float
    runs: int
    rule: str  # "2 sigma" or "interval"

    def describe(self) -> str:
        return (
            f"{self.model} · {self.cell} · {self.canary}: {self.passes}/{self.n} now vs "
            f"{self.historical_rate:.0%} over {self.runs} earlier run(s) ({self.rule})"
        )


class Store:
    """A connection to the history database; create with `open_store(url)`."""

    def __init__(self, connection: Any, dialect: Dialect, url: str) -> None:
        self._db = connection
        self.dialect = dialect
        self.url = url
        self._create_schema()

    # -- writing ------------------------------------------------------------------------------------

    def begin_run(self, run: Mapping[str, Any], run_id: str | None = None) -> str:
        """Record a run (or re-open an existing one) and return its id."""
        run_id = run_id or uuid.uuid4().hex[:12]
        self._execute(
            "INSERT INTO agentloop_runs (run_id, started, harness_version, harness_commit, host, info) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
            (
                run_id,
                self._ts(_parse_ts(run.get("started")) or datetime.now(UTC)),
                run.get("harness_version"),
                run.get("harness_commit"),
                run.get("host"),
                json.dumps(dict(run), default=str),
            ),
        )
        return run_id

    def finish_run(self, run_id: str) -> None:
        self._execute(
            "UPDATE agentloop_runs SET finished = ? WHERE run_id = ?", (self._ts(datetime.now(UTC)), run_id)
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
            self._ts(attempt.started),
            self._ts(attempt.finished),
            json.dumps(attempt.to_record()),
        )
        marks = ", ".join([self.dialect.placeholder] * len(values))
        cursor = self._execute(
            f"INSERT INTO agentloop_attempts ({ATTEMPT_COLUMNS}) VALUES ({marks}) "
            "ON CONFLICT (run_id, canary, model, cell, repetition) DO NOTHING",
            values,
            raw_marks=True,
        )
        return bool(cursor.rowcount)

    def add_probe(self, run_id: str, model: str, digest: str, prompt_hash: str, answer: str) -> None:
        self._execute(
            "INSERT INTO agentloop_probes (run_id, model, model_digest, prompt_hash, answer, recorded) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (run_id, model, digest, prompt_hash, answer, self._ts(datetime.now(UTC))),
        )

    # -- reading ------------------------------------------------------------------------------------

    def latest_unfinished_run(self) -> str | None:
        """The run an interrupted session left open: what `--agent-resume` continues."""
        row = self._query(
            "SELECT run_id FROM agentloop_runs WHERE finished IS NULL ORDER BY started DESC LIMIT 1", ()
        )
        return row[0][0] if row else None

    def stored_keys(self, run_id: str) -> set[ResumeKey]:
        rows = self._query(
            "SELECT canary_hash, model_digest, cell_key, repetition FROM agentloop_attempts WHERE run_id = ?",
            (run_id,),
        )
        return {ResumeKey(str(a), str(b), str(c), int(d)) for a, b, c, d in rows}

    def attempts(self, run_id: str | None = None, model: str | None = None) -> list[Attempt]:
        """Stored attempts (without transcripts), oldest first; all runs when `run_id` is None."""
        where, params = _filters(run_id=run_id, model=model)
        rows = self._query(f"SELECT record FROM agentloop_attempts{where} ORDER BY id", params)
        return [Attempt.from_record(json.loads(row[0])) for row in rows]

    def runs(self) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT r.run_id, r.started, r.finished, r.harness_version, r.harness_commit, r.host, "
            "COUNT(a.id) FROM agentloop_runs r LEFT JOIN agentloop_attempts a ON a.run_id = r.run_id "
            "GROUP BY r.run_id, r.started, r.finished, r.harness_version, r.harness_commit, r.host "
            "ORDER BY r.started",
            (),
        )
        names = ("run_id", "started", "finished", "harness_version", "harness_commit", "host", "attempts")
        return [dict(zip(names, (_text(v) for v in row), strict=True)) for row in rows]

    def run_rates(self, exclude_run: str | None = None) -> dict[tuple[str, str, str], list[RunRate]]:
        """Per model × cell × canary, each earlier run's passes/n (infra errors excluded), oldest first."""
        rows = self._query(
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
        rows = self._query(
            "SELECT run_id, model_digest, answer FROM agentloop_probes "
            "WHERE model = ? AND prompt_hash = ? AND run_id <> ? ORDER BY id DESC LIMIT 1",
            (model, prompt_hash, exclude_run),
        )
        return (str(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None

    def close(self) -> None:
        self._db.close()

    # -- plumbing -----------------------------------------------------------------------------------

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

    def _ts(self, value: datetime | None) -> Any:
        if value is None or self.dialect is POSTGRES:
            return value
        return value.isoformat()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.dialect.placeholder)

    def _execute(self, sql: str, params: Sequence[Any], *, raw_marks: bool = False) -> Any:
        """One statement in its own transaction: nothing finished is ever held back uncommitted."""
        try:
            cursor = self._db.cursor()
            cursor.execute(sql if raw_marks else self._sql(sql), tuple(params))
            self._db.commit()
            return cursor
        except Exception:
            self._db.rollback()
            raise

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        cursor = self._db.cursor()
        cursor.execute(self._sql(sql), tuple(params))
        rows = [tuple(row) for row in cursor.fetchall()]
        self._db.commit()  # end the read transaction: PostgreSQL would otherwise hold it open
        return rows


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
        return Store(connection, SQLITE, url)
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
        return Store(server, POSTGRES, url)
    raise StoreError(
        f"results store URL {url!r} is neither sqlite:///PATH nor postgresql://...; "
        f"e.g. --agent-store={DEFAULT_URL}"
    )


def find_regressions(
    attempts: Iterable[Attempt], history: Mapping[tuple[str, str, str], list[RunRate]]
) -> list[Regression]:
    """Each model × cell × canary of this run against its earlier runs.

    With SIGMA_MIN_RUNS or more earlier runs, a pass rate more than 2 standard deviations below the
    historical mean (of per-run rates) is a regression; with fewer (too few to estimate a spread),
    one below the Wilson interval of the pooled earlier runs.
    """
    groups: dict[tuple[str, str, str], list[Attempt]] = defaultdict(list)
    for attempt in scored(attempts):
        groups[(attempt.model, attempt.cell, attempt.canary)].append(attempt)
    found = []
    for key, group in sorted(groups.items()):
        earlier = history.get(key, [])
        if not earlier:
            continue
        passes, n = sum(a.outcome is Outcome.PASSED for a in group), len(group)
        rate = passes / n
        if len(earlier) >= SIGMA_MIN_RUNS:
            rates = [r.rate for r in earlier]
            mean = sum(rates) / len(rates)
            sigma = math.sqrt(sum((r - mean) ** 2 for r in rates) / (len(rates) - 1))
            regressed, rule, reference = rate < mean - 2 * sigma and rate < mean, "2 sigma", mean
        else:
            old_passes, old_n = sum(r.passes for r in earlier), sum(r.n for r in earlier)
            reference = old_passes / old_n
            regressed, rule = rate < wilson(old_passes, old_n)[0], "interval"
        if regressed:
            found.append(Regression(*key, passes, n, reference, len(earlier), rule))
    return found


class StoreRecorder:
    """The pytest side of the store: write on arrival, skip what a resumed run already has, probe, flag.

    Writes happen on the controller (where every report arrives, under xdist too), one transaction
    per attempt. Resume skips happen where items run: each process finds the open run itself.
    """

    def __init__(self, config: Any, url: str, *, resume: bool, run: Mapping[str, Any]) -> None:
        self.config = config
        self.is_worker = hasattr(config, "workerinput")
        self.store = open_store(url, base=Path(config.rootpath))
        self.resume = resume
        self._resume_keys: set[ResumeKey] | None = None
        self._probed: set[str] = set()
        self.probe_findings: list[str] = []
        self.regressions: list[Regression] = []
        open_run = self.store.latest_unfinished_run() if resume else None
        if self.is_worker:
            self.run_id = open_run or ""
        else:
            self.run_id = open_run or self.store.begin_run(run)
        self.resumed = open_run is not None

    # -- where items run ----------------------------------------------------------------------------

    def pytest_runtest_setup(self, item: Any) -> None:
        canary, model, cell = (
            getattr(item, "canary", None),
            getattr(item, "model", None),
            getattr(item, "cell", None),
        )
        if canary is None or model is None or cell is None:
            return
        info = self._model_info(item)
        if self.is_worker and not self.run_id:  # the controller opened it as this worker started
            self.run_id = self.store.latest_unfinished_run() or ""
        if self.resume and self.run_id:
            key = ResumeKey(
                canary.content_hash,
                model_digest(model.spec.raw, info),
                cell_key(cell.id, cell.config()),
                item.repetition,
            )
            if key in self._stored_keys():
                from pytest_agentloop.items import skip_attempt

                skip_attempt(f"agentloop resume: already stored in run {self.run_id}")
        if not model.is_pseudo and model.spec.raw not in self._probed:
            self._probed.add(model.spec.raw)
            item.user_properties.append(("agentloop_probe", self._probe(item, info)))

    def _stored_keys(self) -> set[ResumeKey]:
        if self._resume_keys is None:
            self._resume_keys = self.store.stored_keys(self.run_id)
        return self._resume_keys

    def _model_info(self, item: Any) -> dict[str, Any]:
        if item.model.is_pseudo:
            return {"backend": item.model.spec.backend}
        from pytest_agentloop.runner import runner_of

        return dict(runner_of(self.config).backend(item.model).fingerprint())

    def _probe(self, item: Any, info: Mapping[str, Any]) -> str:
        from pytest_agentloop.backends.base import InfraError
        from pytest_agentloop.probe import PROBE_HASH, PROBE_STABLE, ProbeResult, ask_twice
        from pytest_agentloop.runner import runner_of

        model = item.model.spec.raw
        digest = model_digest(model, info)
        try:
            first, second = ask_twice(runner_of(self.config).backend(item.model))
        except InfraError as exc:
            return f"{model}: determinism probe not run ({exc})"
        run_id = self.run_id or "worker"
        previous = self.store.last_probe(model, PROBE_HASH, exclude_run=run_id)
        self.store.add_probe(run_id, model, digest, PROBE_HASH, first)
        last_run, last_digest, last_answer = previous if previous else (None, None, None)
        result = ProbeResult(model, digest, first, second, last_answer, last_run, last_digest)
        return "; ".join(result.findings) or f"{model}: {PROBE_STABLE}"

    # -- on the controller --------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: Any) -> None:
        if self.is_worker:
            return
        for name, value in getattr(report, "user_properties", ()):
            if name == "agentloop_probe" and value not in self.probe_findings:
                self.probe_findings.append(value)
        record = getattr(report, "agentloop_attempt", None)
        if record is not None and report.when == "call":
            self.store.add(self.run_id, Attempt.from_record(record))

    def pytest_sessionfinish(self, session: Any, exitstatus: int) -> None:
        if self.is_worker:
            self.store.close()
            return
        if exitstatus != 2:  # 2: interrupted; the run stays open for --agent-resume
            self.store.finish_run(self.run_id)
        self.regressions = find_regressions(
            self.run_attempts(), self.store.run_rates(exclude_run=self.run_id)
        )

    def run_attempts(self) -> list[Attempt]:
        """This run's attempts, including those an interrupted session stored before a resume."""
        return self.store.attempts(self.run_id)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        count = len(self.run_attempts())
        resumed = " (resumed)" if self.resumed else ""
        terminalreporter.write_sep(
            "-", f"agentloop store: run {self.run_id}{resumed}, {count} attempts in {self.url}"
        )
        for note in self.probe_findings:
            terminalreporter.write_line(f"probe: {note}")
        for regression in self.regressions:
            terminalreporter.write_line(f"REGRESSION {regression.describe()}", red=True)

    def pytest_unconfigure(self) -> None:
        """Closed last: the summary, the decide view and the HTML verdict all read the run from it."""
        if not self.is_worker:
            self.store.close()

    @property
    def url(self) -> str:
        return self.store.url


def run_attempts(config: Any) -> list[Attempt]:
    """The run's attempts for gates and reports: from the store when one is kept (a resumed run spans
    sessions), else those that arrived in this session."""
    reporter = config.pluginmanager.get_plugin("agentloop-reporter")
    results = getattr(reporter, "results", None)
    session = list(results.attempts) if results is not None else []
    recorder = config.pluginmanager.get_plugin("agentloop-store")
    if recorder is None:
        return session
    # This session's attempts keep their transcripts (the waste profile reads them); the store adds
    # those an earlier session of a resumed run finished.
    seen = {attempt_identity(a) for a in session}
    earlier = [a for a in recorder.run_attempts() if attempt_identity(a) not in seen]
    return earlier + session
