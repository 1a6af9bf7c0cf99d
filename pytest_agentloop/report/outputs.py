"""The run's outputs, registered at session start: the summary and cards always, the gates and the HTML
verdict when asked for. Every one reads the run's attempts from their owner (state.run_attempts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.state import is_worker, run_attempts, runner_key, settings_key


def run_prices(config: pytest.Config) -> dict[str, Any]:
    """The run's prices: each `[prices."MODEL"]`, and `[prices.local]` for every local model without one.

    One reading for every consumer (summary, cards, HTML, gates), so cost per pass never differs
    between them.
    """
    from pytest_agentloop.tuning import TuningError, prices_from_settings

    settings = config.stash[settings_key]
    try:
        return prices_from_settings(settings.prices, settings.models)
    except TuningError as exc:
        raise pytest.UsageError(f"agentloop: {exc}") from None


def unsandboxed_note(config: pytest.Config) -> str | None:
    """The warning every output carries when model-written code ran without isolation, else None."""
    if config.stash[settings_key].sandbox.engine != "none":
        return None
    return (
        'UNSANDBOXED run: [sandbox] engine = "none", so model-written code ran on the host with '
        "resource limits only; it could read secrets, change the hidden checks and reach the network, "
        "and these verdicts cannot be trusted as such"
    )


def register_outputs(config: pytest.Config) -> None:
    """The summary and cards (every process), the gates and the HTML report hooks (controller)."""
    manager = config.pluginmanager
    manager.register(RunReporter(config), "agentloop-reporter")
    settings = config.stash[settings_key]
    if is_worker(config):
        return
    if settings.gates:
        from pytest_agentloop.gates import GatePlugin, parse_gates

        gates = parse_gates(settings.gates)
        manager.register(
            GatePlugin(gates, lambda: run_attempts(config), run_prices(config)), "agentloop-gates"
        )
    if manager.hasplugin("html") and config.getoption("htmlpath", None):
        from pytest_agentloop.report.html import HtmlReport

        manager.register(HtmlReport(config, run_prices(config)), "agentloop-html")


class RunReporter:
    """The terminal summary, decide view and finding cards (controller), and closing the runner (all)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.cards: list[Path] = []

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        self._gate_lines(terminalreporter)
        self._tuning_notes(terminalreporter)
        attempts = run_attempts(self.config)
        if not attempts:
            return
        from pytest_agentloop.report.decide import write_decide
        from pytest_agentloop.report.terminal import write_summary

        unsandboxed = unsandboxed_note(self.config)
        if unsandboxed:
            terminalreporter.write_line(f"agentloop: {unsandboxed}", red=True, bold=True)
        write_summary(terminalreporter, attempts, self.config.stash[settings_key].json_path)
        write_decide(terminalreporter, attempts, run_prices(self.config))
        for path in self.cards:
            terminalreporter.write_line(f"card: {path}")

    def _tuning_notes(self, terminalreporter: Any) -> None:
        """What --agent-combine / --agent-diagnose made of their results file (also under --collect-only)."""
        runner = self.config.stash.get(runner_key, None)
        for note in runner.tuning.notes if runner is not None else []:
            terminalreporter.write_line(f"tuning: {note}")

    def _write_cards(self) -> None:
        """One finding card per model, amended by `pytest_agentloop_card` hooks (controller only)."""
        directory = self.config.stash[settings_key].cards
        attempts = run_attempts(self.config)
        if directory is None or is_worker(self.config) or not attempts:
            return
        from pytest_agentloop.report.card import host_fingerprint, write_cards

        unsandboxed = unsandboxed_note(self.config)

        def amend(model: str, lines: list[str], attempts: list[Any]) -> None:
            if unsandboxed:
                lines[1:1] = ["", f"**{unsandboxed}.**"]
            self.config.hook.pytest_agentloop_card(model=model, lines=lines, attempts=attempts)

        self.cards = write_cards(directory, attempts, host_fingerprint(), run_prices(self.config), amend)

    def _gate_lines(self, terminalreporter: Any) -> None:
        """The smoke gates this run ran (read from the run-shared directory the workers wrote to)."""
        runner = self.config.stash.get(runner_key, None)
        if runner is None or not runner.settings.smoke or not runner.smoke:
            return
        results = runner.gate().results()
        if results:
            terminalreporter.section("agentloop smoke gate", sep="-")
            for result in results:
                terminalreporter.write_line(result.line())

    def pytest_sessionfinish(self) -> None:
        self._write_cards()  # before the terminal summary, which the terminal reporter prints afterwards
        runner = self.config.stash.get(runner_key, None)
        if runner is not None:
            runner.close()
