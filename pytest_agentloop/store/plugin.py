"""The pytest side of the store: one writer behind the run's owner, resume skips, the determinism probe.

The controller's `Results` tells the recorder of each attempt (`write`), one transaction each; the
recorder never reads attempts back for the reports. Resume skips and probes happen where items run,
in whichever process that is, for the run id the session was given (session.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytest_agentloop.analysis.regressions import Regression, find_regressions
from pytest_agentloop.records import Attempt
from pytest_agentloop.skips import skip_attempt
from pytest_agentloop.state import is_worker, run_attempts
from pytest_agentloop.store.history import ResumeKey, cell_key, model_digest, open_store


class StoreRecorder:
    def __init__(self, config: Any, url: str, *, resume: bool) -> None:
        self.config = config
        self.is_worker = is_worker(config)
        self.store = open_store(url, base=Path(config.rootpath))
        self.resume = resume
        self.resumed = False  # set by the controller: this session continues a run the store held
        self.run_id = ""
        self._resume_keys: set[ResumeKey] | None = None
        self._probed: set[str] = set()
        self.probe_findings: list[str] = []
        self.regressions: list[Regression] = []

    def attach(self, run_id: str) -> None:
        self.run_id = run_id

    def write(self, attempt: Attempt) -> None:
        """One attempt, from the owner (controller only); a repeated write is harmless."""
        self.store.add(self.run_id, attempt)

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
        if self.resume:
            key = ResumeKey(
                canary.content_hash,
                model_digest(model.spec.raw, info),
                cell_key(cell.id, cell.config()),
                item.repetition,
            )
            if key in self._stored_keys():
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
        previous = self.store.last_probe(model, PROBE_HASH, exclude_run=self.run_id)
        runner = runner_of(self.config)
        runner.hold(item.model)  # inside the lease: a probe outside it would load the model unguarded
        answer, note = run_probe(runner.backend(item.model), model, digest, previous)
        if answer is not None:
            self.store.add_probe(self.run_id, model, digest, PROBE_HASH, answer)
        return note

    # -- on the controller --------------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: Any) -> None:
        if self.is_worker:
            return
        for name, value in getattr(report, "user_properties", ()):
            if name == "agentloop_probe" and value not in self.probe_findings:
                self.probe_findings.append(value)

    def pytest_sessionfinish(self, session: Any, exitstatus: int) -> None:
        if self.is_worker:
            self.store.close()
            return
        if exitstatus != 2:  # 2: interrupted; the run stays open for --agent-resume
            self.store.finish_run(self.run_id)
        self.regressions = find_regressions(
            run_attempts(self.config), self.store.run_rates(exclude_run=self.run_id)
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker:
            return
        count = len(run_attempts(self.config))
        resumed = " (resumed)" if self.resumed else ""
        terminalreporter.write_sep(
            "-", f"agentloop store: run {self.run_id}{resumed}, {count} attempts in {self.url}"
        )
        for note in self.probe_findings:
            terminalreporter.write_line(f"probe: {note}")
        for regression in self.regressions:
            terminalreporter.write_line(f"REGRESSION {regression.describe()}", red=True)

    def pytest_unconfigure(self) -> None:
        if not self.is_worker:
            self.store.close()

    @property
    def url(self) -> str:
        return self.store.url
