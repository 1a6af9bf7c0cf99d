"""Which host serves each model, and the order items run in, so each model is loaded once per run.

Every xdist worker computes the same answer from the same specs and items (no live calls, no
sets), which is what lets pytest-xdist hand items out consistently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import pytest

from pytest_agentloop.backends.base import BackendError, ModelSpec
from pytest_agentloop.cells import BASELINE

if TYPE_CHECKING:
    from pytest_agentloop.canary import Canary
    from pytest_agentloop.cells import Cell

SMOKE_TIER = "smoke"
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


def plan_models(
    raw_specs: list[str], hosts: list[str] | dict[str, str], *, hooked: bool = False
) -> list[ModelRun]:
    """Parse the specs, refuse unknown backends up front, and give each a unique label.

    With `hooked` (a plugin implements `pytest_agentloop_make_backend` or `_make_agent`), an unknown
    backend may be the plugin's: it is refused on its first item instead, if no hook builds it.
    """
    from pytest_agentloop.backends.registry import known_backends, unknown_backend

    specs = [ModelSpec.parse(raw) for raw in dict.fromkeys(raw_specs)]
    for spec in specs:
        if not hooked and spec.backend not in (*PSEUDO_MODELS, *AGENT_KINDS, *known_backends()):
            raise unknown_backend(spec)
    slugs = [spec.slug for spec in specs]
    # In a [hosts] table an agent may go without a line: its model's own line serves it (runner).
    table = hosts if isinstance(hosts, dict) else {}
    served = [
        spec.backend not in PSEUDO_MODELS
        and (spec.backend not in AGENT_KINDS or not table or spec.raw in table)
        for spec in specs
    ]
    assigned = assign_hosts(specs, hosts, served)
    return [
        ModelRun(
            spec=spec,
            label=spec.slug if slugs.count(spec.slug) == 1 else f"{spec.backend}-{spec.slug}",
            host=host,
        )
        for spec, host in zip(specs, assigned, strict=True)
    ]


@runtime_checkable
class PlannedItem(Protocol):
    """What scheduling and the runner read of a canary item (items.CanaryItem is one): the attempt it
    stands for. A protocol, so the modules below items never import it."""

    canary: Canary
    model: ModelRun
    cell: Cell
    repetition: int
    user_properties: list[tuple[str, object]]

    @property
    def nodeid(self) -> str: ...

    def add_marker(self, marker: Any, append: bool = True) -> None: ...


def assign_hosts(
    specs: Sequence[ModelSpec], hosts: Sequence[str] | Mapping[str, str], served: Sequence[bool]
) -> list[str | None]:
    """One host per spec: a `[hosts]` table maps spec -> URL; a list is dealt round-robin in spec order.

    `served[i]` is False for specs that need no host (the pseudo-models): they get None and do not
    take a turn in the rotation.
    """
    if isinstance(hosts, Mapping):
        missing = [s.raw for s, needs in zip(specs, served, strict=True) if needs and s.raw not in hosts]
        if missing:
            raise BackendError(
                f"no host for {', '.join(missing)} in the [hosts] table; add a line like "
                f'"{missing[0]}" = "http://HOST:PORT"'
            )
        return [hosts[s.raw] if needs else None for s, needs in zip(specs, served, strict=True)]
    assigned: list[str | None] = []
    turn = 0
    for needs in served:
        if needs and hosts:
            assigned.append(hosts[turn % len(hosts)])
            turn += 1
        else:
            assigned.append(None)
    return assigned


def group_name(host: str) -> str:
    """The xdist_group of every item bound to `host`, so `--dist loadgroup` keeps it on one worker."""
    return f"agentloop-host:{host}"


def mark_host_groups(items: Sequence[pytest.Item]) -> bool:
    """With several hosts, bind each host's items to one worker (a no-op for a single host); True
    when it did.

    Must run before pytest-xdist's own modifyitems, which reads the marks to suffix the node ids.
    """
    canaries = _canary_items(items)
    hosts = list(dict.fromkeys(item.model.host for item in canaries if item.model.host is not None))
    if len(hosts) < 2:
        return False
    for item in canaries:
        if item.model.host is not None:
            item.add_marker(pytest.mark.xdist_group(name=group_name(item.model.host)))
    return True


def mark_adaptive_groups(items: Sequence[pytest.Item]) -> None:
    """Under `--repeat=auto`, bind each model × canary's items to one worker (`--dist loadgroup`): the
    worker that decides when a cell is settled must have seen all of its and its baseline's attempts.
    Host groups, when there are several hosts, already hold whole model × canary sets."""
    for item in _canary_items(items):
        item.add_marker(
            pytest.mark.xdist_group(name=f"agentloop-adaptive:{item.model.spec.raw}:{item.canary.id}")
        )


def order_items(items: list[pytest.Item], model_order: Sequence[str], *, by_round: bool = False) -> None:
    """Sort in place: model-major (in spec order), smoke tier first within a model, otherwise stable.

    `by_round` (adaptive repetition): within a model, repetition 1 of every canary and cell, then
    repetition 2, and so on, so a round has finished before the next one asks what is settled.
    Items that are not canaries keep their relative order ahead of the canaries.
    """
    rank = {raw: index for index, raw in enumerate(model_order)}

    def key(position_item: tuple[int, pytest.Item]) -> tuple[int, int, int, int]:
        position, item = position_item
        model = getattr(item, "model", None)
        if model is None or not hasattr(item, "canary"):
            return (-1, 0, 0, position)
        round_ = getattr(item, "repetition", 0) if by_round else 0
        return (rank.get(model.spec.raw, len(rank)), item.canary.tier != SMOKE_TIER, round_, position)

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]


GateKey = tuple[str, str]  # (model spec, tool-call mode)


def gate_key(item: PlannedItem) -> GateKey:
    """Which gate an item stands behind: its model's, in its cell's tool-call mode.

    A model that makes no call in one mode may make them in another (a chat template that does not
    render `tools` fails `native` and works `constrained`), so each mode gets its own smoke attempt:
    one dead mode must not skip the cells that would have shown the way out.
    """
    return (item.model.spec.raw, item.cell.settings.tool_mode)


def smoke_items(items: Sequence[pytest.Item]) -> dict[GateKey, PlannedItem]:
    """Per model and tool mode, the item its gate runs: the first smoke-tier canary's first repetition,
    in the baseline cell where the baseline uses that mode, else in the first cell that does."""
    candidates = [
        item for item in _canary_items(items) if item.canary.tier == SMOKE_TIER and item.repetition == 1
    ]
    baseline_first = sorted(candidates, key=lambda item: item.cell.id != BASELINE.id)  # stable
    chosen: dict[GateKey, PlannedItem] = {}
    for item in baseline_first:
        chosen.setdefault(gate_key(item), item)
    return chosen


def _canary_items(items: Sequence[pytest.Item]) -> list[PlannedItem]:
    return [item for item in items if isinstance(item, PlannedItem)]
