"""A session's run: its identity, the owner of its attempts on the controller, and the writers behind it.

The run id is explicit: `--agent-run-id ID` (CI shards share one), the run `--agent-resume` continues
(the one it names, or the latest unfinished run whose settings match, said in the header), or a new
one, printed in the header. The controller decides it before xdist starts its workers and hands it
to them in `workerinput` (`pytest_configure_node`): no process guesses it from the store.

Data flows one way: reports reach the controller, `Results` (the owner) takes each attempt once,
journals it and tells the store; every reader reads the owner (state.run_attempts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator
from typing import Any

import pytest

from pytest_agentloop.config import Settings
from pytest_agentloop.records import Attempt
from pytest_agentloop.results import Results, ResultsError, new_run_id, run_info
from pytest_agentloop.state import RUN_ID_INPUT, is_worker, results_key, run_id_key, runner_key, settings_key

# What makes two sessions the same run for `--agent-resume`: the plan, not its selection or outputs.
RUN_SETTINGS = {
    "models",
    "hosts",
    "repeat",
    "adaptive",
    "matrix",
    "backends",
    "embedded",
    "combine",
    "diagnose",
    "agents",
}


def settings_key_of(settings: Settings) -> str:
    plan = settings.model_dump(mode="json", include=RUN_SETTINGS)
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:16]


def start_session(config: pytest.Config, settings: Settings) -> None:
    """Settings, runner, run id, owner and store, in that order; a mistake is one `ERROR:` line."""
    from pytest_agentloop.backends.base import BackendError
    from pytest_agentloop.matrix import MatrixError
    from pytest_agentloop.runner import Runner
    from pytest_agentloop.sandbox import SandboxUnavailable
    from pytest_agentloop.tuning import TuningError

    config.stash[settings_key] = settings
    if settings.models:
        try:
            config.stash[runner_key] = Runner(config, settings)
        except (BackendError, MatrixError, TuningError, SandboxUnavailable) as exc:
            raise pytest.UsageError(f"agentloop: {exc}") from None
        if settings.adaptive:
            from pytest_agentloop.adaptive import AdaptiveRepetition

            config.pluginmanager.register(AdaptiveRepetition(config, settings.repeat), "agentloop-adaptive")
    recorder = _store_recorder(config, settings)
    if is_worker(config):
        given = config.workerinput.get(RUN_ID_INPUT)  # type: ignore[attr-defined]
        run_id = str(given or settings.run_id or new_run_id())
        config.stash[run_id_key] = run_id
        if recorder is not None:
            recorder.attach(run_id)
        return
    key = settings_key_of(settings)
    run_id, note = _choose_run(settings, recorder, key)
    config.stash[run_id_key] = run_id
    plan = {"models": settings.models, "repeat": settings.repeat, "sandbox": settings.sandbox.engine}
    info = run_info({"run_id": run_id, "settings_key": key, **plan})
    try:
        results = Results(info, settings.json_path)
    except ResultsError as exc:
        raise pytest.UsageError(f"agentloop: {exc}") from None
    if recorder is not None:
        recorder.attach(run_id)
        recorder.resumed = settings.resume and recorder.store.has_run(run_id)  # not a fresh one
        recorder.store.begin_run(info, run_id=run_id)
        if settings.resume:  # the run's earlier sessions: the verdict covers the whole run
            results.seed(recorder.store.attempts(run_id))
        results.subscribe(recorder.write)
    config.stash[results_key] = results
    config.pluginmanager.register(RunOwner(config, results, note), "agentloop-run")


def _store_recorder(config: pytest.Config, settings: Settings) -> Any:
    if not (settings.store or settings.resume):
        return None
    from pytest_agentloop.store import DEFAULT_URL, StoreError
    from pytest_agentloop.store.plugin import StoreRecorder

    try:
        recorder = StoreRecorder(config, settings.store or DEFAULT_URL, resume=settings.resume)
    except StoreError as exc:
        raise pytest.UsageError(f"agentloop: {exc}") from None
    config.pluginmanager.register(recorder, "agentloop-store")
    return recorder


def _choose_run(settings: Settings, recorder: Any, key: str) -> tuple[str, str | None]:
    """(run id, what the header should say about it)."""
    named = settings.run_id
    if not settings.resume:
        return named or new_run_id(), None
    store = recorder.store
    if named:
        if not store.has_run(named):
            raise pytest.UsageError(
                f"agentloop: --agent-resume: {store.url} holds no run {named!r}; "
                "`agentloop history` lists the runs (or drop --agent-resume to start it)"
            )
        return named, f"resuming run {named}"
    found = store.open_run_with(key)
    if found is not None:
        return found, f"resuming run {found}: the latest unfinished run with these settings"
    fresh = new_run_id()
    return fresh, f"no unfinished run with these settings in {store.url}; starting run {fresh}"


class RunOwner:
    """On the controller: hands each arriving attempt to the owner, compacts the results file at the end."""

    def __init__(self, config: pytest.Config, results: Results, note: str | None) -> None:
        self.config = config
        self.results = results
        self.note = note

    def pytest_report_header(self) -> list[str]:
        run_id = self.results.run["run_id"]
        lines = [f"agentloop run: {run_id} (other shards join it with --agent-run-id={run_id})"]
        return lines + ([f"agentloop: {self.note}"] if self.note else [])

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, None, None]:
        """Hand the attempt to the owner; once every plugin has seen the report (the HTML report's
        transcript extra among them), drop the transcript from it: pytest keeps every report until the
        session ends, and the transcript is on disk with the owner."""
        record = getattr(report, "agentloop_attempt", None)
        if record is None or report.when != "call":
            return (yield)
        attempt = Attempt.from_record(record)
        self.results.add(attempt)
        self.config.hook.pytest_agentloop_attempt_finished(attempt=attempt, config=self.config)
        try:
            return (yield)
        finally:
            record.pop("transcript", None)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        self.results.compact()

    def pytest_unconfigure(self) -> None:
        self.results.close()
