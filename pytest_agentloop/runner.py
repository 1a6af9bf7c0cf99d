"""The per-process state of a run: settings, the models under test, their backends, agents.

Each pytest process (the controller, or each xdist worker) holds one Runner in `config.stash`.
Backends start lazily on the first item that needs them, so `--collect-only` never touches a
runtime, and they are closed when the session ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from pytest_agentloop.agent.base import Agent
from pytest_agentloop.attempt import run_attempt
from pytest_agentloop.backends.base import Backend, BackendError, ModelSpec
from pytest_agentloop.cells import BASELINE, Cell
from pytest_agentloop.config import Settings
from pytest_agentloop.matrix import expand, load_matrix
from pytest_agentloop.records import Attempt
from pytest_agentloop.sandbox import SandboxLimits

if TYPE_CHECKING:
    from pytest_agentloop.agent.base import Episode
    from pytest_agentloop.agent.external import ExternalAgentSettings
    from pytest_agentloop.canary import Canary
    from pytest_agentloop.grading import Grade
    from pytest_agentloop.items import CanaryItem
    from pytest_agentloop.workspace import Workspace

PSEUDO_MODELS = ("reference", "null")
# Specs that name an agent rather than a backend: external:NAME ([agents.NAME]), python:MODULE:CLASS.
AGENT_KINDS = ("external", "python")


@dataclass(frozen=True)
class ModelRun:
    """A model under test and the short label its items carry."""

    spec: ModelSpec
    label: str
    host: str | None

    @property
    def is_pseudo(self) -> bool:
        return self.spec.backend in PSEUDO_MODELS


def plan_models(raw_specs: list[str], hosts: list[str], *, hooked: bool = False) -> list[ModelRun]:
    """Parse the specs, refuse unknown backends up front, and give each a unique label.

    With `hooked` (a plugin implements `pytest_agentloop_make_backend` or `_make_agent`), an unknown
    backend may be the plugin's: it is refused on its first item instead, if no hook builds it.
    """
    from pytest_agentloop.backends.registry import known_backends

    specs = [ModelSpec.parse(raw) for raw in dict.fromkeys(raw_specs)]
    for spec in specs:
        if not hooked and spec.backend not in (*PSEUDO_MODELS, *AGENT_KINDS, *known_backends()):
            raise BackendError(
                f"unknown backend {spec.backend!r} in --agent-model {spec.raw}; known backends: "
                f"{', '.join(known_backends())} (and the pseudo-models reference, null)"
            )
    slugs = [spec.slug for spec in specs]
    host = hosts[0] if hosts else None
    return [
        ModelRun(
            spec=spec,
            label=spec.slug if slugs.count(spec.slug) == 1 else f"{spec.backend}-{spec.slug}",
            host=None if spec.backend in PSEUDO_MODELS else host,
        )
        for spec in specs
    ]


class Runner:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        hook = config.hook
        hooked = bool(
            hook.pytest_agentloop_make_backend.get_hookimpls()
            or hook.pytest_agentloop_make_agent.get_hookimpls()
        )
        self.models = plan_models(settings.models, settings.hosts, hooked=hooked)
        self._external_settings()  # an external:NAME without its [agents.NAME] table is a usage error
        self.limits = SandboxLimits(**settings.sandbox.model_dump())
        self.matrix = load_matrix(settings.matrix)
        self._backends: dict[str, Backend] = {}

    def cells_for(self, model: ModelRun) -> list[Cell]:
        """The OFAT cells for a real model; pseudo-models replay or quit, so only the baseline."""
        if model.is_pseudo:
            return [BASELINE]
        return expand(model.spec.raw, self.matrix)

    def run(self, item: CanaryItem) -> Attempt:
        agent, info = self._agent_for(item.model, item.cell)
        return run_attempt(
            item.canary,
            agent,
            model=item.model.spec.raw,
            cell=item.cell,
            repetition=item.repetition,
            limits=self.limits,
            keep=self.settings.keep_workspaces,
            infra_retries=self.settings.infra_retries,
            host=item.model.host,
            model_info=info,
            review=self._review,
        )

    def _agent_for(self, model: ModelRun, cell: Cell) -> tuple[Agent, dict[str, Any]]:
        from pytest_agentloop.agent.loop import LoopAgent
        from pytest_agentloop.agent.pseudo import NullAgent, ReferenceAgent

        hooked = self.config.hook.pytest_agentloop_make_agent(
            spec=model.spec, host=model.host, cell=cell, config=self.config
        )
        if hooked is not None:
            return hooked, {"agent": f"{type(hooked).__module__}.{type(hooked).__qualname__}"}
        if model.spec.backend in AGENT_KINDS:
            return self._named_agent(model)
        if model.spec.backend == "reference":
            return ReferenceAgent(), {"backend": "reference"}
        if model.spec.backend == "null":
            return NullAgent(), {"backend": "null"}
        backend = self.backend(model)
        return LoopAgent(backend), backend.fingerprint()

    def _named_agent(self, model: ModelRun) -> tuple[Agent, dict[str, Any]]:
        """external:NAME or python:MODULE:CLASS; a bad one stops the run with a usage error."""
        from pytest_agentloop.agent.external import make_external_agent
        from pytest_agentloop.agent.python_agent import load_python_agent

        try:
            if model.spec.backend == "python":
                return load_python_agent(model.spec.model), {"agent": model.spec.raw}
            settings = self._external_settings()[model.spec.model]
            serve = lambda spec: self.backend(ModelRun(spec, spec.slug, model.host))  # noqa: E731
            agent = make_external_agent(settings, serve, self.config.rootpath)
        except BackendError as exc:
            pytest.exit(f"agentloop: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        return agent, agent.fingerprint()

    def _external_settings(self) -> dict[str, ExternalAgentSettings]:
        from pytest_agentloop.agent.external import external_settings

        names = [model.spec.model for model in self.models if model.spec.backend == "external"]
        return {name: external_settings(self.settings.agents, name) for name in names}

    def _review(self, canary: Canary, workspace: Workspace, episode: Episode, grade: Grade) -> Grade | None:
        """The `pytest_agentloop_grade` hook: a plugin may replace the built-in grade."""
        result: Grade | None = self.config.hook.pytest_agentloop_grade(
            canary=canary, workspace=workspace, episode=episode, grade=grade
        )
        return result

    def backend(self, model: ModelRun) -> Backend:
        backend = self._backends.get(model.spec.raw)
        if backend is None:
            from pytest_agentloop.backends.registry import make_backend

            options = self._backend_options(model)
            try:
                backend = self.config.hook.pytest_agentloop_make_backend(
                    spec=model.spec, host=model.host, options=options, config=self.config
                ) or make_backend(model.spec, model.host, options)
            except BackendError as exc:
                pytest.exit(f"agentloop: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
            self._backends[model.spec.raw] = backend
        return backend

    def _backend_options(self, model: ModelRun) -> dict[str, Any]:
        if model.spec.backend == "embedded":
            return self.settings.embedded.model_dump()
        return {}

    def close(self) -> None:
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()


runner_key = pytest.StashKey[Runner]()


def runner_of(config: pytest.Config) -> Runner:
    return config.stash[runner_key]
