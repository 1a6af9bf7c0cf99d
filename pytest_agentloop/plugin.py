"""The pytest face of pytest-agentloop: options, collection, and carrying attempts to the controller.

Kept thin and cheap to import (it loads in every pytest session of every project that has the
plugin installed): heavy modules are imported only once a run actually involves canaries.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop import CANARY_FILE
from pytest_agentloop.fixtures import canary_workspace  # noqa: F401  (offered to every test session)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    """The plugin's own hooks (hookspecs.py), for conftest.py extensions."""
    from pytest_agentloop import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("agentloop", "evaluate LLMs as coding agents on canaries")
    group.addoption(
        "--agent-model",
        action="append",
        dest="agent_models",
        metavar="SPEC",
        help="model to evaluate, BACKEND:MODEL (repeatable), e.g. ollama:qwen3:30b, embedded:smollm2-135m; "
        "pseudo-models: reference (replays the solution), null (finishes at once)",
    )
    group.addoption(
        "--agent-host",
        action="append",
        dest="agent_hosts",
        metavar="URL",
        help="base URL of the model runtime when not the backend's default (repeatable)",
    )
    group.addoption(
        "--repeat",
        dest="agent_repeat",
        metavar="N|auto[:N]",
        help="repetitions per canary × model × cell; auto[:N] (default N=9) runs rounds and stops a cell "
        "once its decision is settled",
    )
    group.addoption(
        "--agent-config",
        dest="agent_config",
        metavar="PATH",
        help="TOML settings (default: agentloop.toml or [tool.agentloop] in pyproject.toml)",
    )
    group.addoption(
        "--agent-json", dest="agent_json", metavar="PATH", help="write the agentloop.results/1 file here"
    )
    group.addoption(
        "--agent-keep-workspaces",
        action="store_true",
        default=None,
        dest="agent_keep_workspaces",
        help="keep the git workspace of every attempt that did not pass",
    )
    group.addoption(
        "--agent-gate",
        action="append",
        dest="agent_gates",
        metavar="EXPR",
        help="CI gate, SCOPE:METRIC OP NUMBER (repeatable), e.g. 'lite:pass_rate>=0.9'; with gates, "
        "only unmet gates fail the run",
    )
    group.addoption(
        "--agent-store",
        nargs="?",
        const="sqlite:///.agentloop/results.db",
        dest="agent_store",
        metavar="URL",
        help="keep every attempt in a results history: sqlite:///PATH (default .agentloop/results.db) "
        "or postgresql://...",
    )
    group.addoption(
        "--agent-combine",
        dest="agent_combine",
        metavar="PATH",
        help="from an earlier --agent-json file, run each factor's proven winner together as the cell "
        "'combined', against the baseline",
    )
    group.addoption(
        "--agent-diagnose",
        dest="agent_diagnose",
        metavar="PATH",
        help="from an earlier --agent-json file, add turns=x2 and tokens=x2 probe cells for exactly the "
        "canaries whose baseline ran out of budget",
    )
    group.addoption(
        "--agent-cards",
        dest="agent_cards",
        metavar="DIR",
        help="write one Markdown finding card per model here",
    )
    group.addoption(
        "--agent-resume",
        action="store_true",
        default=None,
        dest="agent_resume",
        help="continue the store's interrupted run: skip attempts it already holds",
    )
    group.addoption(
        "--agent-no-smoke",
        action="store_false",
        default=None,
        dest="agent_smoke",
        help="skip the smoke gate (one smoke canary per model before its matrix)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "agentloop(tier): a canary attempt (added to every canary item)")
    for tier in ("smoke", "lite", "medium", "heavy", "trap"):
        config.addinivalue_line("markers", f"{tier}: a canary of the {tier} tier")


def _settings(config: pytest.Config) -> Any:
    from pytest_agentloop.adaptive import parse_repeat
    from pytest_agentloop.config import ConfigError, build_settings, find_config_table

    opt = config.option
    explicit = Path(opt.agent_config) if opt.agent_config else None
    repeat, adaptive = parse_repeat(opt.agent_repeat) if opt.agent_repeat else (None, None)
    overrides = {
        "models": opt.agent_models,
        "hosts": opt.agent_hosts,
        "repeat": repeat,
        "adaptive": adaptive or None,
        "json": opt.agent_json,
        "keep_workspaces": opt.agent_keep_workspaces,
        "combine": opt.agent_combine,
        "diagnose": opt.agent_diagnose,
        "cards": opt.agent_cards,
        "smoke": opt.agent_smoke,
        "store": opt.agent_store,
        "gates": opt.agent_gates,
        "resume": opt.agent_resume,
    }
    try:
        table, source = find_config_table(config.rootpath, explicit)
        return build_settings(table, source, overrides)
    except ConfigError as exc:
        raise pytest.UsageError(f"agentloop: {exc}") from None


def _is_configured(config: pytest.Config) -> bool:
    """Cheap test for "this session is about agentloop", so other sessions never import pydantic."""
    opt = config.option
    if opt.agent_models or opt.agent_config or opt.agent_repeat or opt.agent_json or opt.agent_hosts:
        return True
    if opt.agent_store or opt.agent_gates or opt.agent_resume:
        return True
    if (config.rootpath / "agentloop.toml").is_file():
        return True
    pyproject = config.rootpath / "pyproject.toml"
    return pyproject.is_file() and "[tool.agentloop" in pyproject.read_text(encoding="utf-8")


def _start_runner(config: pytest.Config) -> None:
    """Validate settings and models before collection, so a mistake is one `ERROR:` line, not a traceback."""
    from pytest_agentloop.backends.base import BackendError
    from pytest_agentloop.matrix import MatrixError
    from pytest_agentloop.runner import Runner, runner_key
    from pytest_agentloop.sandbox import SandboxUnavailable
    from pytest_agentloop.tuning import TuningError

    settings = _settings(config)
    if settings.models:
        try:
            config.stash[runner_key] = Runner(config, settings)
        except (BackendError, MatrixError, TuningError, SandboxUnavailable) as exc:
            raise pytest.UsageError(f"agentloop: {exc}") from None
        if settings.adaptive:
            from pytest_agentloop.adaptive import AdaptiveRepetition

            config.pluginmanager.register(AdaptiveRepetition(config, settings.repeat), "agentloop-adaptive")


def pytest_ignore_collect(collection_path: Path) -> bool | None:
    """A canary's repo/, hidden/ and solution/ hold test files of their own: never collect them.

    The hidden checks in particular must only ever run inside the grading sandbox.
    """
    if collection_path.name != CANARY_FILE and (collection_path.parent / CANARY_FILE).is_file():
        return True
    return None


def pytest_collect_file(parent: pytest.Collector, file_path: Path) -> pytest.Collector | None:
    if file_path.name != CANARY_FILE:
        return None
    from pytest_agentloop.items import CanaryFile

    return CanaryFile.from_parent(parent, path=file_path)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Model-major order, smoke first; host groups for `--dist loadgroup`.

    tryfirst: pytest-xdist's own modifyitems reads the xdist_group marks added here.
    """
    from pytest_agentloop.runner import runner_key

    runner = config.stash.get(runner_key, None)
    if runner is None:
        return
    from pytest_agentloop.scheduling import mark_adaptive_groups, mark_host_groups, order_items

    order_items(items, [model.spec.raw for model in runner.models], by_round=runner.settings.adaptive)
    if not mark_host_groups(items) and runner.settings.adaptive:
        mark_adaptive_groups(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Each model's gate item, chosen from what will run: after -k / -m / --lf deselection."""
    from pytest_agentloop.runner import runner_key

    runner = session.config.stash.get(runner_key, None)
    if runner is None:
        return
    from pytest_agentloop.scheduling import smoke_items

    chosen = smoke_items(session.items).items()
    runner.smoke = {key: item for key, item in chosen if not item.model.is_pseudo}


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Under xdist, check the models on the controller first (see Runner.preflight)."""
    from pytest_agentloop.runner import runner_key

    runner = session.config.stash.get(runner_key, None)
    distributed = session.config.pluginmanager.has_plugin("dsession")
    if runner is not None and distributed and not session.config.option.collectonly:
        runner.preflight()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Give the model's lease back once this process moves on to another model (or runs out)."""
    model = getattr(item, "model", None)
    if model is None or getattr(nextitem, "model", None) == model:
        return
    from pytest_agentloop.runner import runner_key

    runner = item.config.stash.get(runner_key, None)
    if runner is not None:
        runner.release()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    from pytest_agentloop.items import CanaryItem

    report = yield
    if isinstance(item, CanaryItem) and report.skipped:
        # A skipped item has no attempt; its identity still fills the HTML report's columns.
        identity = {"model": item.model.spec.raw, "cell": item.cell.id, "repetition": item.repetition}
        report.agentloop_identity = identity
    attempt = getattr(item, "attempt", None)
    if call.when == "call" and attempt is not None:
        # A plain dict: execnet carries it to the xdist controller with the report.
        report.agentloop_attempt = attempt.to_record(with_transcript=True)
        # On the item, not this report: JUnit writes a test case's properties from its teardown
        # report, which copies item.user_properties (and, unlike other attributes, survives xdist).
        for key in ("outcome", "limit", "turns", "tool_calls", "malformed_tool_calls", "checks_passed"):
            value = getattr(attempt, key)
            item.user_properties.append((f"agentloop_{key}", getattr(value, "value", value)))
        item.user_properties.append(("agentloop_tokens", attempt.tokens))
        item.user_properties.append(("agentloop_cost", _attempt_cost(item.config, attempt)))
    return report


def _attempt_cost(config: pytest.Config, attempt: Any) -> float | None:
    """The attempt's cost at the configured price for its model; None when no price is set."""
    from pytest_agentloop.analysis.cost import attempt_cost
    from pytest_agentloop.runner import runner_key
    from pytest_agentloop.tuning import prices_from_settings

    runner = config.stash.get(runner_key, None)
    if runner is None:
        return None
    price = prices_from_settings(runner.settings.prices, [attempt.model]).get(attempt.model)
    return None if price is None else round(attempt_cost(attempt, price), 6)


def pytest_sessionstart(session: pytest.Session) -> None:
    if _is_configured(session.config):
        _start_runner(session.config)
    session.config.pluginmanager.register(RunReporter(session.config), "agentloop-reporter")
    if _is_configured(session.config):
        from pytest_agentloop.progress import ProgressReporter  # turn i/N, outcome letters, gate lines

        session.config.pluginmanager.register(ProgressReporter(session.config), "agentloop-progress")
        if not hasattr(session.config, "workerinput"):
            from pytest_agentloop.usage_stop import UsageStop  # a usage error mid-run: exit 4, once

            session.config.pluginmanager.register(UsageStop(session), "agentloop-usage-stop")
    from pytest_agentloop.report.outputs import register_outputs

    register_outputs(session.config)


class RunReporter:
    """Gathers attempts where the reports end up (the controller under xdist) and writes them out."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.is_worker = hasattr(config, "workerinput")
        self.results: Any = None
        self.cards: list[Path] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "agentloop_attempt", None)
        if record is None or report.when != "call" or self.is_worker:
            return
        from pytest_agentloop.records import Attempt

        attempt = Attempt.from_record(record)
        self._results().add(attempt)
        self.config.hook.pytest_agentloop_attempt_finished(attempt=attempt, config=self.config)

    def _results(self) -> Any:
        if self.results is None:
            from pytest_agentloop.results import Results, run_info

            settings = _settings(self.config)
            self.results = Results(
                run_info(
                    {"models": settings.models, "repeat": settings.repeat, "sandbox": settings.sandbox.engine}
                ),
                settings.json_path,
            )
            recorder = self.config.pluginmanager.get_plugin("agentloop-store")
            if recorder is not None and recorder.resumed:
                self.results.seed(recorder.run_attempts())
        return self.results

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self._gate_lines(terminalreporter)
        self._tuning_notes(terminalreporter)
        if self.results is None or not self.results.attempts:
            return
        from pytest_agentloop.report.decide import write_decide
        from pytest_agentloop.report.outputs import unsandboxed_note
        from pytest_agentloop.report.terminal import write_summary
        from pytest_agentloop.store.plugin import run_attempts

        attempts = run_attempts(self.config)  # a resumed run's verdict covers its earlier sessions too
        unsandboxed = unsandboxed_note(self.config)
        if unsandboxed:
            terminalreporter.write_line(f"agentloop: {unsandboxed}", red=True, bold=True)
        write_summary(terminalreporter, attempts, self.results.path)
        write_decide(terminalreporter, attempts, self._prices())
        for path in self.cards:
            terminalreporter.write_line(f"card: {path}")

    def _prices(self) -> Any:
        from pytest_agentloop.report.outputs import run_prices

        return run_prices(self.config)

    def _tuning_notes(self, terminalreporter: Any) -> None:
        """What --agent-combine / --agent-diagnose made of their results file (also under --collect-only)."""
        from pytest_agentloop.runner import runner_key

        runner = self.config.stash.get(runner_key, None)
        for note in runner.tuning.notes if runner is not None else []:
            terminalreporter.write_line(f"tuning: {note}")

    def _write_cards(self) -> None:
        """One finding card per model, amended by `pytest_agentloop_card` hooks (controller only)."""
        directory = _settings(self.config).cards
        if directory is None or self.is_worker or self.results is None or not self.results.attempts:
            return
        from pytest_agentloop.report.card import host_fingerprint, write_cards
        from pytest_agentloop.report.outputs import unsandboxed_note
        from pytest_agentloop.store.plugin import run_attempts

        unsandboxed = unsandboxed_note(self.config)

        def amend(model: str, lines: list[str], attempts: list[Any]) -> None:
            if unsandboxed:
                lines[1:1] = ["", f"**{unsandboxed}.**"]
            self.config.hook.pytest_agentloop_card(model=model, lines=lines, attempts=attempts)

        attempts = run_attempts(self.config)
        self.cards = write_cards(directory, attempts, host_fingerprint(), self._prices(), amend)

    def _gate_lines(self, terminalreporter: Any) -> None:
        """The smoke gates this run ran (read from the run-shared directory the workers wrote to)."""
        from pytest_agentloop.runner import runner_key

        runner = self.config.stash.get(runner_key, None)
        if runner is None or not runner.settings.smoke or not runner.smoke:
            return
        results = runner.gate().results()
        if results:
            terminalreporter.section("agentloop smoke gate", sep="-")
            for result in results:
                terminalreporter.write_line(result.line())

    def pytest_sessionfinish(self) -> None:
        from pytest_agentloop.runner import runner_key

        self._write_cards()  # before the terminal summary, which the terminal reporter prints afterwards

        runner = self.config.stash.get(runner_key, None)
        if runner is not None:
            runner.close()
