"""The pytest face of pytest-agentloop: options, collection, and carrying attempts to the controller.

Kept thin and cheap to import (it loads in every pytest session of every project that has the
plugin installed): heavy modules are imported only once a run actually involves canaries.
"""

from __future__ import annotations

import sys
from collections.abc import Generator
from pathlib import Path
from typing import Any, TypeGuard

import pytest

from pytest_agentloop import CANARY_FILE
from pytest_agentloop.fixtures import canary_workspace  # noqa: F401  (offered to every test session)
from pytest_agentloop.state import RUN_ID_INPUT, run_id_key, runner_key


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
        "--agent-run-id",
        dest="agent_run_id",
        metavar="ID",
        help="the run this session belongs to (default: a new one, printed in the header); CI shards "
        "that pass the same ID join one run in one store",
    )
    group.addoption(
        "--agent-resume",
        action="store_true",
        default=None,
        dest="agent_resume",
        help="continue an interrupted run in the store, skipping attempts it holds: the one --agent-run-id "
        "names, else the latest unfinished run with these settings",
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
        "run_id": opt.agent_run_id,
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
    if opt.agent_store or opt.agent_gates or opt.agent_resume or opt.agent_run_id:
        return True
    if (config.rootpath / "agentloop.toml").is_file():
        return True
    pyproject = config.rootpath / "pyproject.toml"
    return pyproject.is_file() and "[tool.agentloop" in pyproject.read_text(encoding="utf-8")


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
    runner = config.stash.get(runner_key, None)
    if runner is None:
        return
    from pytest_agentloop.scheduling import mark_adaptive_groups, mark_host_groups, order_items

    order_items(items, [model.spec.raw for model in runner.models], by_round=runner.settings.adaptive)
    if not mark_host_groups(items) and runner.settings.adaptive:
        mark_adaptive_groups(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Each model's gate item, chosen from what will run: after -k / -m / --lf deselection."""
    runner = session.config.stash.get(runner_key, None)
    if runner is None:
        return
    from pytest_agentloop.scheduling import smoke_items

    chosen = smoke_items(session.items).items()
    runner.smoke = {key: item for key, item in chosen if not item.model.is_pseudo}


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Under xdist, check the models on the controller first (see Runner.preflight)."""
    runner = session.config.stash.get(runner_key, None)
    distributed = session.config.pluginmanager.has_plugin("dsession")
    if runner is not None and distributed and not session.config.option.collectonly:
        runner.preflight()


def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Give the model's lease back once this process moves on to another model (or runs out)."""
    model = getattr(item, "model", None)
    if model is None or getattr(nextitem, "model", None) == model:
        return
    runner = item.config.stash.get(runner_key, None)
    if runner is not None:
        runner.release()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if report.skipped and _is_canary_item(item):
        # A skipped item has no attempt; its identity still fills the HTML report's columns.
        identity = {"model": item.model.spec.raw, "cell": item.cell.id, "repetition": item.repetition}
        report.agentloop_identity = identity
    attempt = getattr(item, "attempt", None)
    if call.when == "call" and attempt is not None:
        # A plain dict: execnet carries it to the xdist controller with the report.
        report.agentloop_attempt = attempt.to_record(with_transcript=True)
        ran: Any = item  # a CanaryItem: only it has an attempt
        ran.attempt = attempt.model_copy(update={"transcript": None})  # the report carries it on
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
    from pytest_agentloop.tuning import prices_from_settings

    runner = config.stash.get(runner_key, None)
    if runner is None:
        return None
    price = prices_from_settings(runner.settings.prices, [attempt.model]).get(attempt.model)
    return None if price is None else round(attempt_cost(attempt, price), 6)


def _is_canary_item(item: pytest.Item) -> TypeGuard[Any]:
    """Without importing items (and pydantic) in sessions that never collected a canary."""
    items = sys.modules.get("pytest_agentloop.items")
    return items is not None and isinstance(item, items.CanaryItem)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Sessions about agentloop start their run here; others import nothing more of the plugin."""
    if _is_configured(session.config):
        from pytest_agentloop.progress import ProgressReporter  # turn i/N, outcome letters, gate lines
        from pytest_agentloop.report.outputs import register_outputs
        from pytest_agentloop.session import start_session

        start_session(session.config, _settings(session.config))
        session.config.pluginmanager.register(ProgressReporter(session.config), "agentloop-progress")
        if not hasattr(session.config, "workerinput"):
            from pytest_agentloop.usage_stop import UsageStop  # a usage error mid-run: exit 4, once

            session.config.pluginmanager.register(UsageStop(session), "agentloop-usage-stop")
        register_outputs(session.config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """pytest-xdist: hand the run id to each worker through its own channel (`workerinput`)."""
    run_id = node.config.stash.get(run_id_key, None)
    if run_id is not None:
        node.workerinput[RUN_ID_INPUT] = run_id
