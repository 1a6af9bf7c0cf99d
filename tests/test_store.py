"""The results store against real SQLite and a real PostgreSQL server.

PostgreSQL cases need a server: `scripts/ci-services` starts Debian's package on loopback and prints
the DSN that `.ci/run` exports as AGENTLOOP_TEST_POSTGRES. Each test gets its own schema there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pytest_agentloop.analysis.regressions import RunRate, find_regressions
from pytest_agentloop.analysis.stats import stratified_lower_tail
from pytest_agentloop.records import Attempt, Outcome
from pytest_agentloop.store import ResumeKey, Store, StoreError, cell_key, model_digest, open_store
from tests._attempts import attempt, runs

POSTGRES_ENV = "AGENTLOOP_TEST_POSTGRES"


def postgres_url() -> str:
    dsn = os.environ.get(POSTGRES_ENV)
    if not dsn:
        pytest.skip(f"no PostgreSQL server: run `export {POSTGRES_ENV}=$(scripts/ci-services)` first")
    return dsn


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'results.db'}"
        return
    import psycopg

    dsn = postgres_url()
    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{dsn}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    yield opened
    opened.close()


RUN = {
    "started": "2026-05-01T10:00:00+00:00",
    "harness_version": "0.1.0",
    "harness_commit": "abc123",
    "host": "box",
}


def audited(outcome: str = "passed", repetition: int = 0, turns: int = 0) -> Attempt:
    return attempt(
        outcome,
        repetition=repetition,
        turns=turns,
        canary_hash="c0ffee",
        cell_config={"temperature": 0.2},
        model_info={"sha256": "d1g3st", "quantization": "Q4_1", "runtime": "llama.cpp"},
        host="gpu-1",
    )


def test_attempt_round_trips_with_its_audit_trail(store: Store) -> None:
    run_id = store.begin_run(RUN)
    original = audited("budget_exceeded", repetition=2, turns=7)
    assert store.add(run_id, original) is True
    (back,) = store.attempts(run_id)
    assert back == original.model_copy(update={"transcript": None})
    (run,) = store.runs()
    assert (run["run_id"], run["harness_commit"], run["host"], run["attempts"]) == (
        run_id,
        "abc123",
        "box",
        1,
    )


def test_a_repeated_write_stores_the_attempt_once(store: Store) -> None:
    run_id = store.begin_run(RUN)
    assert store.add(run_id, audited()) is True
    assert store.add(run_id, audited()) is False
    assert len(store.attempts(run_id)) == 1


def test_resume_finds_the_open_run_with_its_settings_only(store: Store) -> None:
    """A bare --agent-resume must never join another open run (another model, a live CI job)."""
    finished = store.begin_run({**RUN, "settings_key": "k"})
    store.finish_run(finished)
    open_run = store.begin_run({**RUN, "started": "2026-05-02T10:00:00+00:00", "settings_key": "k"})
    other = store.begin_run({**RUN, "started": "2026-05-03T10:00:00+00:00", "settings_key": "other"})
    store.add(open_run, audited(repetition=1))
    assert store.open_run_with("k") == open_run
    assert store.open_run_with("other") == other
    assert store.open_run_with("none") is None
    assert store.has_run(open_run) and not store.has_run("nope")
    assert store.stored_keys(open_run) == {
        ResumeKey("c0ffee", "d1g3st", cell_key("baseline", {"temperature": 0.2}), 1)
    }
    assert ResumeKey.of(audited(repetition=1)) in store.stored_keys(open_run)


def test_run_rates_group_by_run_and_leave_out_infra_errors(store: Store) -> None:
    first, second = store.begin_run(RUN), store.begin_run({**RUN, "started": "2026-05-02T00:00:00+00:00"})
    for a in runs("PPFI"):
        store.add(first, a)
    for a in runs("FF"):
        store.add(second, a)
    rates = store.run_rates(exclude_run=second)[("m", "baseline", "c1")]
    assert [(r.run_id, r.passes, r.n) for r in rates] == [(first, 2, 3)]


def test_probe_answers_come_back_from_other_runs_only(store: Store) -> None:
    old, new = store.begin_run(RUN), store.begin_run(RUN)
    store.add_probe(old, "m", "d1", "p", "four")
    store.add_probe(new, "m", "d1", "p", "five")
    assert store.last_probe("m", "p", exclude_run=new) == (old, "d1", "four")
    assert store.last_probe("other", "p", exclude_run=new) is None


WRITER = """
import sys
from pytest_agentloop.store import open_store
from tests._attempts import attempt
store = open_store(sys.argv[1])
run_id = store.begin_run({"started": "2026-05-01T10:00:00+00:00"}, run_id="shared")
for rep in range(25):
    store.add(run_id, attempt("passed", canary="c" + sys.argv[2], repetition=rep))
"""


def test_concurrent_writers_lose_nothing(store_url: str) -> None:
    """Four processes write into one run at once, as four xdist workers or four sessions would."""
    root = Path(__file__).resolve().parents[1]
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, store_url, str(i)], cwd=root) for i in range(4)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0, 0]
    store = open_store(store_url)
    stored = store.attempts("shared")
    store.close()
    assert len(stored) == 100
    assert len({(a.canary, a.repetition) for a in stored}) == 100


def test_bad_urls_are_one_line_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="neither sqlite:///PATH nor postgresql://"):
        open_store("mysql://x")
    with pytest.raises(StoreError, match="cannot connect to the results store"):
        open_store("postgresql://nobody@127.0.0.1:1/none")


def test_model_digest_prefers_the_runtime_digest() -> None:
    assert model_digest("ollama:q", {"digest": "sha256:aa", "sha256": "bb"}) == "sha256:aa"
    assert model_digest("embedded:x", {"sha256": "bb"}) == "bb"
    assert model_digest("reference", {"backend": "reference"}) == "reference"


def history(*rates: tuple[int, int]) -> dict[tuple[str, str, str], list[RunRate]]:
    return {("m", "baseline", "c1"): [RunRate(f"r{i}", "", p, n) for i, (p, n) in enumerate(rates)]}


def test_a_real_drop_is_flagged_with_its_exact_p_value() -> None:
    steady = history((9, 10), (10, 10), (9, 10), (10, 10), (9, 10))
    (flag,) = find_regressions(runs("PPPPPFFFFF"), steady)  # 5/10 after 47/50
    assert (flag.scope, flag.passes, flag.n, flag.history_passes, flag.history_n, flag.runs) == (
        "tier lite",
        5,
        10,
        47,
        50,
        5,
    )
    assert flag.p_value < 0.01 and flag.checks == 1
    assert "Holm-adjusted" in flag.describe()
    assert find_regressions(runs("PPPPPPPPPF"), steady) == []


def test_a_history_without_spread_is_not_infinitely_tight() -> None:
    """The issue's case: five runs at 3/3, then 2/3, was called a 2-sigma regression (Fisher p = 0.17)."""
    assert find_regressions(runs("PPF"), history(*[(3, 3)] * 5)) == []
    assert find_regressions(runs("FFF", canary="new"), history((3, 3))) == []  # no history, nothing to say


def test_many_checks_are_corrected_for() -> None:
    """One drop that alone reaches p < 0.05 is no regression among the twelve tiers and cells checked."""
    earlier = {("m", f"cell{i}", "c1"): [RunRate("r0", "", 6, 6)] for i in range(12)}
    now = runs("PPFF", cell="cell0") + [a for i in range(1, 12) for a in runs("PPPP", cell=f"cell{i}")]
    single = {("m", "cell0", "c1"): earlier[("m", "cell0", "c1")]}
    assert stratified_lower_tail([(2, 4, 6, 6)]) < 0.15
    assert find_regressions(runs("FFFF", cell="cell0"), single) != []  # alone, 0/4 after 6/6 is flagged
    assert find_regressions(now, earlier) == []


def test_infra_errors_do_not_count_as_regressions() -> None:
    assert find_regressions([attempt(Outcome.INFRA_ERROR)], history((3, 3))) == []


def test_probe_findings_tell_noise_from_a_changed_stack() -> None:
    from pytest_agentloop.probe import ProbeResult

    assert ProbeResult("m", "d1", "1, 2", "1, 2", "1, 2", "r0", "d1").findings == []
    (noisy,) = ProbeResult("m", "d1", "1, 2", "1, 3").findings
    assert "not deterministic at temperature 0" in noisy
    (runtime,) = ProbeResult("m", "d1", "1, 2", "1, 2", "7, 7", "r0", "d1").findings
    assert "drifted since run r0" in runtime and "runtime" in runtime
    (weights,) = ProbeResult("m", "d2", "1, 2", "1, 2", "7, 7", "r0", "d1").findings
    assert "weights changed" in weights


def test_probe_against_the_real_embedded_model_is_deterministic() -> None:
    """SmolLM2 in-process through xllamacpp: greedy and seeded, the two answers must agree."""
    from pytest_agentloop.backends.base import ModelSpec
    from pytest_agentloop.backends.embedded import EmbeddedBackend
    from pytest_agentloop.probe import ask_twice

    backend = EmbeddedBackend(ModelSpec.parse("embedded:smollm2-135m"))
    try:
        first, second = ask_twice(backend)
    finally:
        backend.close()
    assert first and first == second
