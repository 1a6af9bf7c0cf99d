"""The plugin's own hooks, so a conftest.py or a plugin can extend a run without forking it.

Registered by `plugin.pytest_addhooks`. Implement them like any pytest hook (a function of that
name in a conftest.py, or a method of a registered plugin); every one may take only the
arguments it needs. docs/extending.md shows one worked example of each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import pytest

    from pytest_agentloop.agent.base import Agent, Episode
    from pytest_agentloop.backends.base import Backend, ModelSpec
    from pytest_agentloop.canary import Canary
    from pytest_agentloop.cells import Cell
    from pytest_agentloop.grading import Grade
    from pytest_agentloop.records import Attempt
    from pytest_agentloop.workspace import Workspace

hookspec = pluggy.HookspecMarker("pytest")


@hookspec(firstresult=True)
def pytest_agentloop_make_backend(
    spec: ModelSpec, host: str | None, options: Mapping[str, Any], config: pytest.Config
) -> Backend | None:
    """Build the Backend for `spec` (e.g. `myruntime:model`), or return None to leave it to others.

    Called once per model and process, on the first item that needs it, before the built-in
    factories: the first non-None result wins, so a conftest can add a runtime or replace a
    built-in one. Raise `BackendError` with a one-line fix for a spec it handles but cannot serve.
    """


@hookspec(firstresult=True)
def pytest_agentloop_make_agent(
    spec: ModelSpec, host: str | None, cell: Cell, config: pytest.Config
) -> Agent | None:
    """Build the Agent that runs an attempt of `spec` in `cell`, or None for the built-in choice.

    The first non-None result wins over the built-in agents (the loop, `reference`, `null`,
    `external:NAME`, `python:MODULE:CLASS`). Called per attempt, so an agent may keep per-attempt
    state; `runner_of(config).backend(...)` gives the built-in backend when the agent wants a model.
    """


@hookspec(firstresult=True)
def pytest_agentloop_grade(
    canary: Canary, workspace: Workspace, episode: Episode, grade: Grade
) -> Grade | None:
    """Return a new Grade to replace the built-in verdict `grade`, or None to keep it.

    Runs after the hidden checks, with the workspace still on disk (`workspace.checkout_pushed`
    gives what was pushed). To add a check, run it and return `dataclasses.replace(grade, ...)`
    with the outcome, reason and check counts updated; the first non-None result wins.
    """


@hookspec
def pytest_agentloop_attempt_finished(attempt: Attempt, config: pytest.Config) -> None:
    """Observe every finished attempt where the run's results gather (the controller under xdist).

    Every implementation is called, once per attempt, e.g. to push metrics to Prometheus or
    post to a chat. The attempt is the plain record: read it, do not change it.
    """


@hookspec
def pytest_agentloop_card(model: str, lines: list[str], attempts: list[Attempt]) -> None:
    """Amend a model's finding card: edit `lines` (the card's Markdown lines) in place.

    `attempts` are that model's attempts in this run. Every implementation is called in turn, so
    each sees the lines the previous ones left.
    """
