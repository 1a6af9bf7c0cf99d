"""`--repeat=auto[:N]`: repetitions run in rounds and a cell stops once its decision is settled.

Items are collected up to the maximum N and ordered round by round (scheduling.order_items), so all
of a round's attempts have run before the next round's first item starts. Before each item the
plugin asks analysis.adaptive whether its cell's decision is already settled, from the attempts this
process has seen, and skips the item with the reason when it is: a non-baseline cell against its
baseline on the same canary; a baseline while any cell of its canary still needs it, or, with no
cell to compare, against the deploy bar.

Under pytest-xdist a worker sees only its own attempts, so the decision needs every item of a model ×
canary on one worker: with `--dist loadgroup` the items are grouped so (scheduling.py); with any
other distribution the cells are not stopped early (every repetition runs), and the summary says so.
Attempts stored by an earlier session of a resumed run are not counted: a resume runs its rounds anew.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

from pytest_agentloop.analysis.adaptive import Settled, comparison_settled, threshold_settled
from pytest_agentloop.cells import BASELINE

AUTO_MAX = 9  # --repeat=auto without a maximum
Key = tuple[str, str]  # (model spec, canary id)
ACTIVE_KEY = "agentloop_adaptive_active"


def parse_repeat(value: str) -> tuple[int, bool]:
    """`--repeat` as (N, adaptive): "5" -> (5, False), "auto" -> (9, True), "auto:12" -> (12, True)."""
    text = value.strip().lower()
    if text == "auto" or text.startswith("auto:"):
        most = text.partition(":")[2] or str(AUTO_MAX)
        if not most.isdigit() or int(most) < 1:
            raise pytest.UsageError(
                f"agentloop: --repeat={value}: write auto or auto:N with N >= 1, e.g. auto:9"
            )
        return int(most), True
    if not text.isdigit():
        raise pytest.UsageError(f"agentloop: --repeat={value}: write a number of repetitions, or auto[:N]")
    return int(text), False


class AdaptiveRepetition:
    """Counts each cell's passes as its attempts finish; skips the items a settled cell no longer needs."""

    def __init__(self, config: pytest.Config, most: int) -> None:
        self.most = most
        self.runs: dict[Key, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
        self.cells: dict[Key, set[str]] = defaultdict(set)
        self.settled: dict[tuple[str, str, str], Settled] = {}
        worker = getattr(config, "workerinput", None)
        if worker is not None:  # the controller said, through xdist's own channel (see below)
            self.active = bool(worker.get(ACTIVE_KEY, False))
        else:
            distributed = config.pluginmanager.has_plugin("dsession")
            self.active = not distributed or getattr(config.option, "dist", "no") == "loadgroup"

    def pytest_configure_node(self, node: Any) -> None:
        """xdist's hook on the controller, per worker: whether the worker may stop cells early."""
        node.workerinput[ACTIVE_KEY] = self.active

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.active and not hasattr(terminalreporter.config, "workerinput"):
            terminalreporter.write_line(
                "note: --repeat=auto stopped no cell early: under xdist it needs --dist loadgroup "
                "(one worker per model × canary); every repetition ran"
            )

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            canary, model, cell = (getattr(item, name, None) for name in ("canary", "model", "cell"))
            if canary is not None and model is not None and cell is not None:
                self.cells[model.spec.raw, canary.id].add(cell.id)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = getattr(report, "agentloop_attempt", None)
        if record is None or report.when != "call" or record["outcome"] == "infra_error":
            return
        self.runs[record["model"], record["canary"]][record["cell"]].append(record["outcome"] == "passed")

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        canary, model, cell = (getattr(item, name, None) for name in ("canary", "model", "cell"))
        if not self.active or canary is None or model is None or cell is None:
            return
        key: Key = (model.spec.raw, canary.id)
        settled = self._settled(key, cell.id)
        if settled is not None:
            from pytest_agentloop.skips import skip_attempt

            runs = len(self.runs[key][cell.id])
            skip_attempt(f"agentloop adaptive: {cell.id} {settled.describe(runs, self.most)}")

    def _settled(self, key: Key, cell: str) -> Settled | None:
        """The cell's settled decision, remembered once reached so later rounds never reopen it."""
        remembered = self.settled.get((*key, cell))
        if remembered is not None:
            return remembered
        runs = self.runs[key]
        base = runs[BASELINE.id]
        counts = (sum(base), len(base))
        if cell != BASELINE.id:
            mine = runs[cell]
            found = comparison_settled(counts, (sum(mine), len(mine)), self.most)
        else:
            others = sorted(self.cells[key] - {BASELINE.id})
            if others:
                open_cells = [other for other in others if self._settled(key, other) is None]
                found = None if open_cells else Settled("every cell settled", "curtailment")
            else:
                found = threshold_settled(counts, self.most)
        if found is not None:
            self.settled[(*key, cell)] = found
        return found
