"""Registers a run's optional outputs as plugin objects, each only when asked for.

Called from `plugin.pytest_sessionstart`; imports nothing heavy unless an output is on, so a
session without a store, gates or an HTML report pays nothing.
"""

from __future__ import annotations

from typing import Any

import pytest


def _prices(config: pytest.Config) -> dict[str, Any]:
    """Per-model prices from the settings ([prices."MODEL"]), validated."""
    from pytest_agentloop.analysis.cost import Price
    from pytest_agentloop.plugin import _settings

    raw = _settings(config).prices
    try:
        return {model: Price.model_validate(price) for model, price in raw.items()}
    except ValueError as exc:
        raise pytest.UsageError(f"agentloop: [prices] {exc}") from None


def register_outputs(config: pytest.Config) -> None:
    opt = config.option
    manager = config.pluginmanager
    if opt.agent_store or opt.agent_resume:
        from pytest_agentloop.results import run_info
        from pytest_agentloop.store import DEFAULT_URL, StoreError, StoreRecorder

        try:
            recorder = StoreRecorder(
                config, opt.agent_store or DEFAULT_URL, resume=opt.agent_resume, run=run_info({})
            )
        except StoreError as exc:
            raise pytest.UsageError(f"agentloop: {exc}") from None
        manager.register(recorder, "agentloop-store")
    if opt.agent_gates and not hasattr(config, "workerinput"):
        from pytest_agentloop.gates import GatePlugin, parse_gates
        from pytest_agentloop.store import run_attempts

        gates = parse_gates(opt.agent_gates)
        manager.register(GatePlugin(gates, lambda: run_attempts(config), _prices(config)), "agentloop-gates")
    if (
        manager.hasplugin("html")
        and config.getoption("htmlpath", None)
        and not hasattr(config, "workerinput")
    ):
        from pytest_agentloop.report.html import HtmlReport

        manager.register(HtmlReport(config, _prices(config)), "agentloop-html")
