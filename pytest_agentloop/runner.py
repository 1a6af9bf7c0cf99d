"""The per-process state of a run: settings, the models under test, their backends, agents.

Each pytest process (the controller, or each xdist worker) holds one Runner in `config.stash`.
Backends start lazily on the first item that needs them, so `--collect-only` never touches a
runtime, and they are closed when the session ends.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_agentloop.agent.base import Agent
from pytest_agentloop.attempt import infra_attempt, run_attempt
from pytest_agentloop.backends.base import Backend, BackendError, InfraError, ModelSpec
from pytest_agentloop.cells import BASELINE, Cell
from pytest_agentloop.config import Settings
from pytest_agentloop.matrix import expand, load_matrix
from pytest_agentloop.records import Attempt
from pytest_agentloop.sandbox import SandboxPolicy, require
from pytest_agentloop.scheduling import AGENT_KINDS, GateKey, ModelRun, PlannedItem, gate_key, plan_models
from pytest_agentloop.skips import skip_attempt
from pytest_agentloop.state import runner_key
from pytest_agentloop.tuning import TuningPlan
from pytest_agentloop.usage_stop import stop_run

if TYPE_CHECKING:
    from pytest_agentloop.agent.base import Episode
    from pytest_agentloop.agent.external import ExternalAgentSettings
    from pytest_agentloop.backends.lifecycle import ManagedHost
    from pytest_agentloop.canary import Canary
    from pytest_agentloop.gate import SmokeGate
    from pytest_agentloop.grading import Grade
    from pytest_agentloop.hostmemory import MemoryReader
    from pytest_agentloop.hosts import HostManager
    from pytest_agentloop.workspace import Workspace

# [backends.NAME] keys that describe the serving stack rather than configure the client.
STATED_STACK = ("tool_call_parser",)


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
        self.limits = SandboxPolicy(**settings.sandbox.model_dump())
        if self.limits.engine != "podman" or self.limits.image:  # else each canary names its image
            require(self.limits)  # a sandbox that cannot run refuses the run here, with the fix
        self.matrix = load_matrix(settings.matrix)
        self.tuning = TuningPlan.load(settings.combine, settings.diagnose, [m.spec.raw for m in self.models])
        self._backends: dict[str, Backend] = {}
        self._managers: dict[str, HostManager | None] = {}
        self._refused: dict[str, str] = {}  # model spec -> the guard's one-line refusal
        # The lease kept across a model's items: model spec, its release, what the load recorded.
        self._held: tuple[str, ExitStack, dict[str, Any]] | None = None
        self.smoke: dict[GateKey, PlannedItem] = {}  # (model, tool mode) -> its gate item (at collection)
        self._gate: SmokeGate | None = None
        self._stopped: str | None = None  # the usage error that stopped the run (usage_stop.py)

    def cells_for(self, model: ModelRun, canary: Canary | None = None) -> list[Cell]:
        """The OFAT cells for a real model (or baseline + combined, plus `canary`'s ceiling probes, when
        tuning from an earlier results file); pseudo-models replay or quit, so only the baseline."""
        if model.is_pseudo:
            return [BASELINE]
        return self.tuning.cells(model.spec.raw, expand(model.spec.raw, self.matrix), canary)

    def run(self, item: PlannedItem) -> Attempt:
        """One attempt, behind the smoke gate of its model and tool mode and (on a managed host) inside
        the model's lease. A mode with no smoke item selected runs ungated."""
        key = gate_key(item)
        smoke = self.smoke.get(key) if self.settings.smoke else None
        if smoke is None:
            return self._attempt(item)
        result, attempt = self.gate().run_once(key, lambda: self._attempt(smoke))
        if item.nodeid == smoke.nodeid:
            return attempt
        if not result.ok:
            skip_attempt(f"agentloop: smoke gate: {result.reason}")
        return self._attempt(item)

    def _attempt(self, item: PlannedItem) -> Attempt:
        if self._stopped is not None:  # items this worker had already been sent
            stop_run(item, self._stopped)
        model = item.model
        try:
            agent, info = self._agent_for(model, item.cell)
            info = {**info, **self.hold(model)}
        except InfraError as exc:  # the host failed before the attempt began: recorded, never lost
            return infra_attempt(
                item.canary, model.spec.raw, item.cell, item.repetition, str(exc), host=model.host
            )
        try:
            return run_attempt(
                item.canary,
                agent,
                model=model.spec.raw,
                cell=item.cell,
                repetition=item.repetition,
                limits=self.limits,
                keep=self.settings.keep_workspaces,
                infra_retries=self.settings.infra_retries,
                host=model.host,
                model_info=info,
                review=self._review,
            )
        except BackendError as exc:  # a request the server will never accept: the run stops, once
            self._stopped = f"agentloop: {exc}"
            stop_run(item, self._stopped)

    def hold(self, model: ModelRun) -> dict[str, Any]:
        """Lease `model` (see `_hold`); anything that talks to the model, the determinism probe too, runs
        inside it. A guard refusal skips the model's items; any other usage error stops the run."""
        refused = self._refused.get(model.spec.raw)
        if refused is not None:
            skip_attempt(refused)
        try:
            return self._hold(model)
        except BackendError as exc:  # ModelWontFit: nothing was loaded
            from pytest_agentloop.hosts import ModelWontFit

            if not isinstance(exc, ModelWontFit):
                pytest.exit(f"agentloop: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
            self._refused[model.spec.raw] = f"agentloop: {exc}"
            skip_attempt(self._refused[model.spec.raw])

    def _hold(self, model: ModelRun) -> dict[str, Any]:
        """Lease `model` on its host, keeping the lease until the items move to another model.

        Holding it across items is what makes a model load once: released between items, another
        worker could swap in its model and this one would be loaded again. Returns what the
        attempt record should say about the load.
        """
        manager = self._manager(model)
        if manager is None:
            return self._resident(model)
        if self._held is not None and self._held[0] == model.spec.raw:
            served = self._held[2]["served_as"]
            if any(m.name == served for m in manager.host.loaded_models()):
                return {**self._held[2], "lease_reused": True}
            # Gone while held (LM Studio's idle TTL, an eviction, a restart): lease it again, guarded,
            # rather than let the next chat load it implicitly (JIT) at the runtime's default context.
        self.release()
        stack = ExitStack()
        partners = self._partners(model)
        lease = stack.enter_context(manager.lease(model.spec.model, self._context(model), partners))
        loaded = next((m for m in manager.host.loaded_models() if m.name == lease.model), None)
        info = {
            "host_name": manager.host.name,
            # The deployment shape the canaries ran in: the card says which one was tested.
            "deployment": f"co-resident with {', '.join(partners)}" if partners else "alone on its host",
            "served_as": lease.model,
            "lease_reused": lease.reused,
            "load_s": lease.load_s,
            "guard": lease.guard,
            "resident_bytes": loaded.size_bytes if loaded else None,
            # The effective context: what the host says the model is loaded at, else what was leased.
            "context": (loaded.context if loaded and loaded.context else None) or lease.context,
        }
        self._held = (model.spec.raw, stack, info)
        return info

    def _partners(self, model: ModelRun) -> list[str]:
        """The models `[guard] co_resident` puts on this model's host beside it (same runtime and URL);
        a listed model need not be under test: a helper that only serves in production counts too."""
        group = self.settings.guard.co_resident
        if model.spec.raw not in group:
            return []
        hosts = {m.spec.raw: m.host for m in self.models}
        partners = [ModelSpec.parse(raw) for raw in group if raw != model.spec.raw]
        return [
            spec.model
            for spec in partners
            if spec.backend == model.spec.backend and hosts.get(spec.raw, model.host) == model.host
        ]

    def _resident(self, model: ModelRun) -> dict[str, Any]:
        """The embedded server's own growth, the only resident figure an unmanaged backend has."""
        backend = self._backends.get(model.spec.raw)
        measure = getattr(backend, "resident_bytes", None)
        return {"resident_bytes": measure()} if callable(measure) else {}

    def release(self) -> None:
        """Give back the held lease (the next item is another model's, or the session ends)."""
        if self._held is not None:
            held, self._held = self._held, None
            held[1].close()

    def _manager(self, model: ModelRun) -> HostManager | None:
        """The lease manager of the model's host; None where the runtime cannot be managed."""
        if model.spec.raw not in self._managers:
            from pytest_agentloop.backends.registry import known_backends, make_host
            from pytest_agentloop.hosts import GuardPolicy, HostManager

            # Pseudo-models, agent kinds and runtimes a hook adds have no host the harness manages.
            managed = model.spec.backend in known_backends()
            host = make_host(model.spec, model.host, self._backend_options(model)) if managed else None
            guard = self.settings.guard
            self._managers[model.spec.raw] = (
                None
                if host is None
                else HostManager(
                    host,
                    GuardPolicy(
                        enabled=guard.enabled,
                        reserve_bytes=int(guard.reserve_gib * 2**30),
                        margin_fraction=guard.margin,
                        parallel=guard.parallel,
                    ),
                    root=self.shared_dir() / "agentloop-hosts",
                    memory=self._memory_reader(model, host),
                )
            )
        return self._managers[model.spec.raw]

    def _memory_reader(self, model: ModelRun, host: ManagedHost) -> MemoryReader:
        """The guard reads the memory of the machine the model lives on (hostmemory.py)."""
        from pytest_agentloop.hostmemory import find_machine, memory_reader

        machine = find_machine(self.settings.machines, model.spec.raw, model.host)
        return memory_reader(machine, model.host, host.loaded_models)

    def _context(self, model: ModelRun) -> int:
        return int(self._backend_options(model)["context"])

    def shared_dir(self) -> Path:
        """A directory every process of this run shares: the xdist run's common basetemp parent."""
        basetemp = Path(self.config._tmp_path_factory.getbasetemp())  # type: ignore[attr-defined]
        return basetemp.parent if hasattr(self.config, "workerinput") else basetemp

    def gate(self) -> SmokeGate:
        if self._gate is None:
            from pytest_agentloop.gate import SmokeGate

            self._gate = SmokeGate(self.shared_dir())
        return self._gate

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
        # What the server cannot report but the user can state (vLLM's --tool-call-parser) joins the record.
        stated = {k: v for k, v in self._backend_options(model).items() if k in STATED_STACK}
        return LoopAgent(backend), {**backend.fingerprint(), **stated}

    def _named_agent(self, model: ModelRun) -> tuple[Agent, dict[str, Any]]:
        """external:NAME or python:MODULE:CLASS; a bad one stops the run with a usage error."""
        from pytest_agentloop.agent.external import make_external_agent
        from pytest_agentloop.agent.python_agent import load_python_agent

        try:
            if model.spec.backend == "python":
                return load_python_agent(model.spec.model), {"agent": model.spec.raw}
            settings = self._external_settings()[model.spec.model]
            table = self.settings.hosts if isinstance(self.settings.hosts, dict) else {}
            host = model.host or (table.get(settings.model) if settings.model else None)
            serve = lambda spec: self.backend(ModelRun(spec, spec.slug, host))  # noqa: E731
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
            from pytest_agentloop.progress import announce

            doing = "starting the model server for" if model.spec.backend == "embedded" else "reaching"
            announce(self.config, f"{doing} {model.spec.raw} …")
            started = time.monotonic()
            try:
                backend = self._checked_backend(model)
            except BackendError as exc:
                pytest.exit(f"agentloop: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
            url = getattr(backend, "base_url", None) or model.host or "its default URL"
            announce(self.config, f"{model.spec.raw} ready at {url} ({time.monotonic() - started:.1f}s)")
            self._backends[model.spec.raw] = backend
        return backend

    def _checked_backend(self, model: ModelRun) -> Backend:
        """The model's backend, checked once: an unreachable host or an unknown model is one line."""
        from pytest_agentloop.backends.registry import make_backend

        options = self._backend_options(model)
        backend: Backend = self.config.hook.pytest_agentloop_make_backend(
            spec=model.spec, host=model.host, options=options, config=self.config
        ) or make_backend(model.spec, model.host, options)
        check = getattr(backend, "check", None)
        if callable(check):
            check()
        return backend

    def preflight(self) -> None:
        """The start-up checks, run on the xdist controller before any item is handed out: a usage error
        raised inside a worker reaches the user as an xdist INTERNALERROR, not as its one line.

        The embedded backend only has its model file checked here; its server starts on the worker.
        """
        from pytest_agentloop.backends.embedded import resolve_model_path

        for model in self.models:
            if model.is_pseudo or model.spec.backend in AGENT_KINDS:
                continue
            try:
                if model.spec.backend == "embedded":
                    resolve_model_path(model.spec.model)
                else:
                    self._checked_backend(model).close()
            except BackendError as exc:
                pytest.exit(f"agentloop: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)

    def _backend_options(self, model: ModelRun) -> dict[str, Any]:
        """[backends.NAME] options; the embedded backend also takes the [embedded] table."""
        options = dict(self.settings.backends.get(model.spec.backend, {}))
        if model.spec.backend == "embedded":  # one server for the run's workers: a slot each
            workers = int(getattr(self.config, "workerinput", {}).get("workercount", 1))
            shared = {"shared_dir": self.shared_dir(), "parallel": workers}
            return {**self.settings.embedded.model_dump(), **options, **shared}
        # One context from the lease to every request: the guard sizes it, the host loads it, and the
        # backend sends it (Ollama reloads at its own default when a chat carries no num_ctx).
        options.setdefault("context", self.settings.guard.context)
        return options

    def close(self) -> None:
        self.release()
        for backend in self._backends.values():
            backend.close()
        self._backends.clear()


def runner_of(config: pytest.Config) -> Runner:
    return config.stash[runner_key]
