"""Canary files and items: one item per model × cell × repetition.

Custom items get no fixtures or parametrize, so the expansion happens here, in a fixed order
(models, then cells, then repetitions) that every xdist worker reproduces identically. Item ids
are short and stable, e.g. `fix-off-by-one[qwen3-30b-baseline-r2]`, and nothing downstream ever
parses them: the attempt record carries its own identity.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from pytest_agentloop.canary import Canary, CanaryError, load_canary
from pytest_agentloop.cells import Cell
from pytest_agentloop.records import Attempt, Outcome
from pytest_agentloop.runner import runner_of
from pytest_agentloop.state import runner_key

if TYPE_CHECKING:
    from _pytest._code.code import ExceptionInfo, TerminalRepr

    from pytest_agentloop.scheduling import ModelRun


class CanaryFile(pytest.File):
    def collect(self) -> Iterator[CanaryItem]:
        runner = self.config.stash.get(runner_key, None)
        if runner is None:
            raise CanaryError(
                f"{self.path}: no model to evaluate; pass --agent-model BACKEND:MODEL "
                "(e.g. embedded:smollm2-135m) or set `models` in agentloop.toml"
            )
        canary = load_canary(self.path)
        for model in runner.models:
            for cell in runner.cells_for(model, canary):
                for repetition in range(1, runner.settings.repeat + 1):
                    name = f"{canary.id}[{model.label}-{cell.id}-r{repetition}]"
                    yield CanaryItem.from_parent(
                        self,
                        name=name,
                        # Spelled out so pytest >= 9.2 parses the brackets as parameters, as it
                        # does for the ids `--lf` stored; from the name alone they stay part of it.
                        nodeid=f"{self.nodeid}::{name}",
                        canary=canary,
                        model=model,
                        cell=cell,
                        repetition=repetition,
                    )

    def repr_failure(self, excinfo: ExceptionInfo[BaseException], style: Any = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, CanaryError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class AttemptNotPassed(Exception):
    """Raised by an item whose attempt did not pass; carries the attempt for the failure text."""

    def __init__(self, attempt: Attempt) -> None:
        super().__init__(attempt.reason)
        self.attempt = attempt


class CanaryItem(pytest.Item):
    def __init__(
        self, *, canary: Canary, model: ModelRun, cell: Cell, repetition: int, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.canary = canary
        self.model = model
        self.cell = cell
        self.repetition = repetition
        self.attempt: Attempt | None = None
        self.add_marker(pytest.mark.agentloop(tier=canary.tier))
        self.add_marker(getattr(pytest.mark, canary.tier))

    def runtest(self) -> None:
        self.attempt = runner_of(self.config).run(self)
        if self.attempt.outcome is not Outcome.PASSED:
            raise AttemptNotPassed(self.attempt)

    def repr_failure(self, excinfo: ExceptionInfo[BaseException], style: Any = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, AttemptNotPassed):
            return describe_failure(excinfo.value.attempt)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        # Line 0 (shown as :1, the canary file's top): skips reported at the item need a line.
        # The repetition too: three failures of one canary, model and cell must not read as one block thrice.
        where = f"canary {self.canary.id} · {self.model.spec.raw} · {self.cell.id}"
        return self.path, 0, f"{where} · repetition {self.repetition}"


def describe_failure(attempt: Attempt) -> str:
    """The diagnosis in a few lines, instead of a traceback."""
    outcome = attempt.outcome.value + (f" ({attempt.limit.value})" if attempt.limit else "")
    lines = [f"{outcome}: {attempt.reason}"]
    checks = ""
    if attempt.checks_total is not None:
        checks = f", hidden checks {attempt.checks_passed}/{attempt.checks_total}"
    lines.append(
        f"turns {attempt.turns}, tool calls {attempt.tool_calls} "
        f"(malformed {attempt.malformed_tool_calls}, redundant {attempt.redundant_tool_calls}, "
        f"from text {attempt.text_tool_calls}), tokens {attempt.tokens}{checks}, "
        f"pushed {'yes' if attempt.pushed else 'no'}, {attempt.wall_s:.1f}s"
    )
    if attempt.transcript and attempt.transcript.turns:
        last = attempt.transcript.turns[-1]
        said = (last.content or "").strip().replace("\n", " ")
        if said:
            lines.append(f"last reply: {said[:200]}{'…' if len(said) > 200 else ''}")
    return "\n".join(lines)
