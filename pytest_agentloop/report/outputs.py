"""Registers a run's optional outputs as plugin objects, each only when asked for.

Called from `plugin.pytest_sessionstart`; imports nothing heavy unless an output is on, so a
session without a store, gates or an HTML report pays nothing.
"""

from __future__ import annotations

from typing import Any

import pytest


def run_prices(config: pytest.Config) -> dict[str, Any]:
    """The run's prices: each `[prices."MODEL"]`, and `[prices.local]` for every local model without one.

    One reading for every consumer (summary, cards, HTML, gates), so cost per pass never differs
    between them.
    """
    from pytest_agentloop.plugin import _settings
    from pytest_agentloop.tuning import TuningError, prices_from_settings

    settings = _settings(config)
    try:
        return prices_from_settings(settings.prices, settings.models)
    except TuningError as exc:
        raise pytest.UsageError(f"agentloop: {exc}") from None


def unsandboxed_note(config: pytest.Config) -> str | None:
    """The warning every output carries when model-written code ran without isolation, else None."""
    from pytest_agentloop.plugin import _settings

    if _settings(config).sandbox.engine != "none":
        return None
    return (
        'UNSANDBOXED run: [sandbox] engine = "none", so model-written code ran on the host with '
        "resource limits only; it could read secrets, change the hidden checks and reach the network, "
        "and these verdicts cannot be trusted as such"
    )


def register_outputs(config: pytest.Config) -> None:
    """The store, the gates (from the settings: TOML or command line) and the HTML report hooks."""
    from pytest_agentloop.plugin import _is_configured, _settings

    manager = config.pluginmanager
    settings = _settings(config) if _is_configured(config) else None
    if settings is not None and (settings.store or settings.resume):
        from pytest_agentloop.results import run_info
        from pytest_agentloop.store import DEFAULT_URL, StoreError
        from pytest_agentloop.store.plugin import StoreRecorder

        try:
            recorder = StoreRecorder(
                config, settings.store or DEFAULT_URL, resume=settings.resume, run=run_info({})
            )
        except StoreError as exc:
            raise pytest.UsageError(f"agentloop: {exc}") from None
        manager.register(recorder, "agentloop-store")
    if settings is not None and settings.gates and not hasattr(config, "workerinput"):
        from pytest_agentloop.gates import GatePlugin, parse_gates
        from pytest_agentloop.store.plugin import run_attempts

        gates = parse_gates(settings.gates)
        manager.register(
            GatePlugin(gates, lambda: run_attempts(config), run_prices(config)), "agentloop-gates"
        )
    if (
        manager.hasplugin("html")
        and config.getoption("htmlpath", None)
        and not hasattr(config, "workerinput")
    ):
        from pytest_agentloop.report.html import HtmlReport

        manager.register(HtmlReport(config, run_prices(config)), "agentloop-html")
