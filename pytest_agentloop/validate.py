"""`agentloop validate`: is a canary sound before anyone relies on its verdicts?

For every canary under the given paths it runs the real pipeline three ways and checks the layout:

- the reference solution must pass (a canary its own solution cannot pass is broken), and must not
  import anything from the environment that `requires` does not declare;
- the null agent must fail (doing nothing is not success);
- the *untouched push*, the starting repo graded as it is, must fail: a canary whose checks already
  pass on the starting repo measures nothing. Its partial credit is printed, because checks the
  starting repo passes are never the model's work;
- the layout rules: id = folder name, tier = parent folder, protected paths exist, a solution for
  every doable task, every hidden file collects on the starting repo (so its checks are counted one
  by one), declared requirements installed.

One line per problem, naming the canary file and the fix; the exit status is 1 when there is any.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pytest_agentloop import CANARY_FILE
from pytest_agentloop.agent.base import Agent, Episode
from pytest_agentloop.agent.pseudo import NullAgent, ReferenceAgent
from pytest_agentloop.attempt import run_attempt
from pytest_agentloop.canary import Canary, CanaryError, layout_problems, load_canary
from pytest_agentloop.grading import Grade, baseline, credit, requirements_problem
from pytest_agentloop.records import Attempt, Outcome
from pytest_agentloop.sandbox import SandboxPolicy
from pytest_agentloop.workspace import Workspace


@dataclass
class Report:
    """What validating one canary found: its problems (each one line) and what the three runs gave."""

    toml: Path
    problems: list[str] = field(default_factory=list)
    reference: Attempt | None = None
    null: Attempt | None = None
    untouched: str = ""  # the untouched push's partial credit, e.g. "0/5 hidden checks pass"

    @property
    def name(self) -> str:
        return f"{self.toml.parent.parent.name}/{self.toml.parent.name}"

    def summary(self) -> str:
        if self.reference is None or self.null is None:
            return f"{'FAIL' if self.problems else 'ok'}  {self.name}"
        runs = (
            f"reference {self.reference.outcome.value}, null {self.null.outcome.value}, "
            f"untouched push {self.untouched}"
        )
        return f"{'FAIL' if self.problems else 'ok  '}  {self.name}: {runs}"


def find_canaries(paths: Iterable[Path]) -> list[Path]:
    """Every canary.toml at or under the paths, in order, each once."""
    found: dict[Path, None] = {}
    for path in paths:
        if path.is_file() and path.name == CANARY_FILE:
            found[path] = None
        elif path.is_dir():
            found.update(dict.fromkeys(sorted(path.rglob(CANARY_FILE))))
    return [p for p in found if not _inside_a_canary(p)]


def _inside_a_canary(toml: Path) -> bool:
    """A canary.toml inside another canary's repo/, hidden/ or solution/ is that canary's content."""
    return any((parent / CANARY_FILE).is_file() for parent in toml.parent.parents)


def validate_canary(toml: Path, limits: SandboxPolicy, parent: Path | None = None) -> Report:
    report = Report(toml)
    try:
        canary = load_canary(toml)
    except CanaryError as exc:
        report.problems.append(str(exc).removeprefix(f"{toml}: "))
        return report
    report.problems += layout_problems(canary)
    limits = limits.for_canary(canary)
    missing = requirements_problem(canary, limits)
    if missing is not None:
        report.problems.append(missing)
        return report
    reference, graded = _attempt(canary, ReferenceAgent(), limits, parent)
    report.reference = reference
    if reference.outcome is not Outcome.PASSED:
        report.problems.append(f"the reference solution does not pass: {reference.reason}")
    if graded is not None and graded.undeclared:
        report.problems.append(
            f"the hidden checks import {', '.join(graded.undeclared)} from the harness environment; "
            "declare it in `requires` or use the standard library"
        )
    report.null, _ = _attempt(canary, NullAgent(), limits, parent)
    if report.null.outcome is not Outcome.FAILED:
        report.problems.append(
            f"the null agent is not failed ({report.null.outcome.value}): {report.null.reason}"
        )
    report.problems += _untouched(canary, limits, parent, report)
    return report


def _attempt(
    canary: Canary, agent: Agent, limits: SandboxPolicy, parent: Path | None
) -> tuple[Attempt, Grade | None]:
    graded: list[Grade] = []

    def keep(_: Canary, __: Workspace, ___: Episode, grade: Grade) -> None:
        graded.append(grade)

    attempt = run_attempt(canary, agent, model="validate", limits=limits, parent=parent, review=keep)
    return attempt, (graded[0] if graded else None)


def _untouched(canary: Canary, limits: SandboxPolicy, parent: Path | None, report: Report) -> list[str]:
    """The starting repo pushed as is: its checks must fail, each hidden file must collect."""
    with Workspace.create(canary, parent) as workspace:
        base = baseline(canary, workspace, limits)
    run = credit(canary, base, base.tally)
    report.untouched = (
        run.summary if run.error or run.tampered else f"{run.baseline}/{run.checks} hidden checks pass"
    )
    problems = []
    if base.tally.tampered is not None:
        problems.append(
            f"the grader's own checks fail on the starting repo ({base.tally.tampered}); report this"
        )
    if base.tally.error is not None:
        problems.append(f"the hidden checks do not complete on the starting repo: {base.tally.error}")
    for name, error in base.tally.collect_errors.items():
        problems.append(
            f"hidden/{name} does not collect on the starting repo ({error}), so its checks cannot be counted "
            "one by one; import what the agent must create inside the tests"
        )
    for name, checks in base.tally.files.items():
        if not checks and name not in base.tally.collect_errors:
            problems.append(f"hidden/{name} collects no check; add tests to it or remove it")
    if run.checks and not run.failed and run.error is None:
        problems.append(
            f"the hidden checks all pass on the untouched starting repo ({run.baseline}/{run.checks}): "
            "the canary measures nothing; make the checks test the change"
        )
    return problems


def validate_paths(paths: Iterable[Path], limits: SandboxPolicy, out: Callable[[str], None]) -> int:
    """Validate every canary under `paths`; print a line per canary and per problem; 0 when all are sound."""
    tomls = find_canaries(paths)
    if not tomls:
        out(f"agentloop validate: no {CANARY_FILE} under {', '.join(map(str, paths))}")
        return 2
    broken = 0
    for toml in tomls:
        report = validate_canary(toml, limits)
        out(report.summary())
        for problem in report.problems:
            out(f"  {toml}: {problem}")
        broken += bool(report.problems)
    out(
        f"{len(tomls) - broken} of {len(tomls)} canaries sound"
        + (f", {broken} with problems" if broken else "")
    )
    return 1 if broken else 0
