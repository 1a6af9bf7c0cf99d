"""The pytest side of the store: write on arrival, skip what a resumed run already has, probe, flag."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_agentloop.analysis.regressions import Regression, find_regressions
from pytest_agentloop.records import Attempt
from pytest_agentloop.results import attempt_identity
from pytest_agentloop.store.history import ResumeKey, cell_key, model_digest, open_store


class StoreRecorder:
    """Writes happen on the controller (where every report arrives, under xdist too), one transaction
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
        from pytest_agentloop.probe import PROBE_HASH, run_probe
        from pytest_agentloop.runner import runner_of

        model = item.model.spec.raw
        digest = model_digest(model, info)
        run_id = self.run_id or "worker"
        previous = self.store.last_probe(model, PROBE_HASH, exclude_run=run_id)
        runner = runner_of(self.config)
        runner.hold(item.model)  # inside the lease: a probe outside it would load the model unguarded
        answer, note = run_probe(runner.backend(item.model), model, digest, previous)
        if answer is not None:
            self.store.add_probe(run_id, model, digest, PROBE_HASH, answer)
        return note

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
