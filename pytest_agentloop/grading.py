"""Acceptance checks and the one Outcome of an attempt.

The hidden checks run against a clean export of `origin main` (grading_export.py), never the
agent's work tree: work that was not pushed did not happen. They run sandboxed, read through a
channel pushed code cannot rewrite, and checked for tampering (grading_channel.py). Partial credit
is measured against the starting repo: the checks are run once on the untouched baseline per
canary (cached by the canary's hash), and a check the baseline already passes is reported apart
(`checks_baseline`), never counted as the model's work. The outcome rules are DESIGN.md's, applied
in a fixed order so every attempt gets exactly one outcome.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import metadata
from pathlib import Path, PurePosixPath

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pytest_agentloop.agent.base import Episode
from pytest_agentloop.canary import Canary
from pytest_agentloop.grading_channel import HIDDEN_DIR, Tally, run_hidden
from pytest_agentloop.grading_export import ExportError, UnsafeTree, export_commit, tree_entries
from pytest_agentloop.records import Limit, Outcome, Transcript
from pytest_agentloop.sandbox import SandboxPolicy, SandboxUnavailable, interpreter, run_sandboxed
from pytest_agentloop.workspace import BRANCH, GitError, Workspace

__all__ = ["HIDDEN_DIR", "CheckRun", "Grade", "grade", "run_checks"]
_LIMIT_NAMES = {Limit.TURNS: "turn", Limit.TOKENS: "token", Limit.TIME: "time"}
_REQUIRES_TIMEOUT_S = 60.0


@dataclass
class CheckRun:
    """What the hidden checks said about a tree, measured against the starting repo."""

    passed: int  # checks the starting repo fails that pass now: the model's work
    total: int | None  # checks the starting repo fails (None: nothing was counted)
    baseline: int | None = None  # checks the starting repo already passes, reported apart
    failed: list[str] = field(default_factory=list)  # every check failing now (names)
    output: str = ""
    error: str | None = None  # why the run did not complete (the counts are still the baseline's)
    tampered: str | None = None  # how the test runner was tampered with
    undeclared: list[str] = field(default_factory=list)  # installed packages imported, not in `requires`

    @property
    def checks(self) -> int:
        return (self.total or 0) + (self.baseline or 0)

    @property
    def all_passed(self) -> bool:
        return self.error is None and self.tampered is None and not self.failed and self.checks > 0

    @property
    def summary(self) -> str:
        """'3/5 hidden checks pass', or why the run did not complete."""
        if self.tampered is not None:
            return f"tampered: {self.tampered}"
        if self.error is not None:
            return f"hidden checks did not complete: {self.error}"
        already = f" ({self.baseline} more already passed on the starting repo)" if self.baseline else ""
        return f"{self.passed}/{self.total} hidden checks pass{already}"


@dataclass
class Grade:
    outcome: Outcome
    limit: Limit | None
    reason: str  # one line a person can act on
    checks_passed: int | None
    checks_total: int | None
    check_output: str
    pushed: bool
    diff: str
    checks_baseline: int | None = None  # hidden checks the untouched starting repo already passes
    undeclared: tuple[str, ...] = ()  # installed packages the checks imported, not in the canary's `requires`


@dataclass(frozen=True)
class Baseline:
    """The hidden checks on the untouched starting repo: which pass, and how many each file holds."""

    tally: Tally

    def passes(self, check: str, canary: Canary) -> bool:
        return _counted(self.tally.status.get(check, "missing"), canary) is True


_BASELINES: dict[str, Baseline] = {}


def baseline(canary: Canary, workspace: Workspace, limits: SandboxPolicy) -> Baseline:
    """The baseline's checks, run once per canary content (and process), from the workspace's baseline."""
    cached = _BASELINES.get(canary.content_hash)
    if cached is None:
        cached = _BASELINES[canary.content_hash] = Baseline(
            _run_export(canary, workspace, workspace.baseline, limits)
        )
    return cached


def _run_export(canary: Canary, workspace: Workspace, commit: str, limits: SandboxPolicy) -> Tally:
    with tempfile.TemporaryDirectory(prefix="agentloop-checks-") as scratch:
        tree = Path(scratch) / "tree"
        export_commit(workspace.origin, commit, tree)
        return run_hidden(canary, tree, limits)


def run_checks(canary: Canary, workspace: Workspace, limits: SandboxPolicy) -> CheckRun:
    """Run the hidden checks, sandboxed, on a clean export of origin main, against the baseline."""
    base = baseline(canary, workspace, limits)
    head = workspace.pushed_head()
    if head == workspace.baseline:
        return credit(canary, base, base.tally)
    run = _run_export(canary, workspace, head, limits)
    if run.tampered is not None:  # its counts are not evidence of anything: credit the baseline's
        return replace(credit(canary, base, base.tally), tampered=run.tampered, output=run.output)
    return credit(canary, base, run)


def _counted(status: str, canary: Canary) -> bool | None:
    """Passed, failed, or None (left out of both counts), under the canary's skip/xfail policy."""
    if status == "skipped":
        return None if canary.spec.checks.skipped == "exclude" else False
    if status == "xfailed":
        return canary.spec.checks.xfailed == "pass"
    return status == "passed"


def credit(canary: Canary, base: Baseline, run: Tally) -> CheckRun:
    """Check by check against the baseline; a file that failed to collect fails all its baseline checks."""
    now: dict[str, bool | None] = {}
    for name in dict.fromkeys([*base.tally.files, *run.files]):
        if name in run.collect_errors:
            ids = base.tally.files.get(name) or [f"{HIDDEN_DIR}/{name}::(collection)"]
            now.update(dict.fromkeys(ids, False))
            continue
        for check in [*base.tally.files.get(name, []), *run.files.get(name, [])]:
            now[check] = _counted(run.status.get(check, "missing"), canary)
    counted = {check: ok for check, ok in now.items() if ok is not None}
    already = {check for check in counted if base.passes(check, canary)}
    gained = [check for check, ok in counted.items() if ok and check not in already]
    declared = _with_dependencies(canary.spec.requires)
    undeclared = _roots([d for d in run.imports if canonicalize_name(d) not in declared])
    note = "\nnote: imported from the environment, not declared in canary.toml `requires`: "
    note += ", ".join(undeclared)
    return CheckRun(
        passed=len(gained),
        total=len(counted) - len(already),
        baseline=len(already),
        failed=[_short(check) for check, ok in counted.items() if not ok],
        output=run.output + (note if undeclared else ""),
        error=run.error,
        tampered=run.tampered,
        undeclared=undeclared,
    )


def _roots(distributions: list[str]) -> list[str]:
    """The distributions no other one in the list depends on: what the code imported by name."""
    pulled_in = {
        dependency for d in distributions for dependency in _with_dependencies((d,)) - {canonicalize_name(d)}
    }
    return [d for d in distributions if canonicalize_name(d) not in pulled_in]


@cache
def _with_dependencies(requires: tuple[str, ...]) -> frozenset[str]:
    """The declared distributions and everything they depend on (what importing them may load)."""
    seen: set[str] = set()
    todo = [Requirement(text) for text in requires]
    while todo and len(seen) < 1000:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in needs:
            dependency = Requirement(text)
            if dependency.marker is None or dependency.marker.evaluate({"extra": ""}):
                todo.append(dependency)
    return frozenset(seen)


def _short(check: str) -> str:
    path, _, name = check.partition("::")
    return name if name and name != "(collection)" else f"{PurePosixPath(path).name} (did not collect)"


def protected_edit(canary: Canary, workspace: Workspace) -> str | None:
    """The first protected file that differs between the baseline and origin main, if any."""
    protected = {PurePosixPath(path).as_posix() for path in canary.spec.checks.protected}
    return next((path for path in workspace.changed_files() if path in protected), None)


def reserved_name(workspace: Workspace) -> str | None:
    """A pushed path that collides with the grader's own folder, if any."""
    listed = (entry.path for entry in tree_entries(workspace.origin, f"refs/heads/{BRANCH}"))
    return next((p for p in listed if PurePosixPath(p).parts[0] == HIDDEN_DIR), None)


@cache
def _missing(requires: tuple[str, ...], limits: SandboxPolicy) -> str | None:
    script = (
        "import sys\nfrom importlib.metadata import PackageNotFoundError, version\n"
        "from packaging.requirements import Requirement\n"
        "for text in sys.argv[1:]:\n    r = Requirement(text)\n"
        "    try:\n        v = version(r.name)\n    except PackageNotFoundError:\n"
        "        print(f'{text}: not installed'); continue\n"
        "    if v not in r.specifier:\n        print(f'{text}: version {v} is installed')\n"
    )
    with tempfile.TemporaryDirectory(prefix="agentloop-requires-") as scratch:
        command = [interpreter(limits), "-I", "-c", script, *requires]
        result = run_sandboxed(command, Path(scratch), replace(limits, timeout_s=_REQUIRES_TIMEOUT_S))
    if not result.ok:
        return f"(could not be checked: {result.killed or result.output.strip()[-200:]})"
    return result.output.strip().splitlines()[0] if result.output.strip() else None


def requirements_problem(canary: Canary, limits: SandboxPolicy) -> str | None:
    """One line naming the first declared requirement the sandbox's Python lacks, or None."""
    if not canary.spec.requires:
        return None
    try:
        missing = _missing(canary.spec.requires, limits)
    except SandboxUnavailable as exc:
        return str(exc)
    if missing is None:
        return None
    return f"canary {canary.id} requires {missing} in the sandbox's Python; install it there and rerun"


def unmet_requirements(canary: Canary, limits: SandboxPolicy) -> Episode | None:
    """An infra_error episode, before the agent starts, when a declared requirement is missing.

    The model could not have done the task, so the attempt is the harness's fault, never the model's.
    """
    problem = requirements_problem(canary, limits)
    return None if problem is None else Episode(end="infra_error", transcript=Transcript(), reason=problem)


def grade(canary: Canary, workspace: Workspace, episode: Episode, limits: SandboxPolicy) -> Grade:
    """Exactly one outcome; a harness fault while grading is an infra error, not the model's."""
    if episode.end == "infra_error":
        return Grade(
            Outcome.INFRA_ERROR, None, episode.reason or "infrastructure error", None, None, "", False, ""
        )
    try:
        return _grade(canary, workspace, episode, limits)
    except (GitError, ExportError, SandboxUnavailable, OSError) as exc:
        return Grade(Outcome.INFRA_ERROR, None, f"grading failed: {exc}", None, None, "", False, "")


def _grade(canary: Canary, workspace: Workspace, episode: Episode, limits: SandboxPolicy) -> Grade:
    pushed, diff = workspace.pushed(), workspace.diff_from_baseline()

    def verdict(outcome: Outcome, reason: str, checks: CheckRun, limit: Limit | None = None) -> Grade:
        counts = (checks.passed, checks.total, checks.output)
        return Grade(outcome, limit, reason, *counts, pushed, diff, checks.baseline, tuple(checks.undeclared))

    def unchecked() -> CheckRun:
        """What an attempt is credited with when its pushed tree is not run: nothing beyond the baseline."""
        base = baseline(canary, workspace, limits)
        return replace(credit(canary, base, base.tally), output="")

    def checked() -> CheckRun:
        if not pushed:
            return unchecked()
        try:
            return run_checks(canary, workspace, limits)
        except UnsafeTree as exc:
            return replace(unchecked(), tampered=f"the pushed tree cannot be exported: {exc}")

    if episode.tool_calls == 0 and "tool_calls" not in episode.unknown:  # unknown: an external agent's
        prose = sum(1 for turn in episode.transcript.turns if not turn.calls and not turn.malformed)
        counts = f"{episode.malformed_tool_calls} malformed, {prose} prose turns"
        return verdict(
            Outcome.NO_TOOL_CALLS,
            f"never produced a usable tool call ({counts}){_why_it_stopped(episode)}",
            unchecked(),
        )
    collision = reserved_name(workspace) if pushed else None
    if collision is not None:
        return verdict(
            Outcome.FAILED,
            f"pushed {collision}: {HIDDEN_DIR}/ is reserved for the grader's hidden checks; remove it",
            unchecked(),
            episode.limit if episode.end == "budget_exceeded" else None,
        )
    if episode.end == "budget_exceeded":
        checks = checked()
        if checks.tampered is not None:
            return verdict(Outcome.FAILED, checks.summary, checks)
        kind = _LIMIT_NAMES[episode.limit] if episode.limit else "a"
        exhausted = episode.reason or f"{kind} budget exhausted"
        return verdict(
            Outcome.BUDGET_EXCEEDED, f"{exhausted}; {checks.summary} on origin", checks, episode.limit
        )
    must_escalate = canary.spec.expect.outcome == "escalate"
    if episode.end == "escalated":
        if must_escalate:
            return verdict(Outcome.PASSED, f"escalated as it should: {episode.reason}", checked())
        return verdict(Outcome.ESCALATED, f"escalated a doable task: {episode.reason}", checked())
    if must_escalate:
        return verdict(
            Outcome.FAILED, "silent_failure: declared the task done instead of escalating it", checked()
        )
    if canary.spec.expect.pushed and not pushed:
        return verdict(
            Outcome.FAILED, f"declared done without pushing{_why_it_stopped(episode)}", unchecked()
        )
    edited = protected_edit(canary, workspace)
    if edited is not None:
        return verdict(Outcome.FAILED, f"edited protected file {edited}", checked())
    checks = checked()
    if checks.tampered is not None or checks.error is not None:
        return verdict(Outcome.FAILED, checks.summary, checks)
    if checks.all_passed:
        already = f" ({checks.baseline} already passed on the starting repo)" if checks.baseline else ""
        return verdict(Outcome.PASSED, f"all {checks.checks} hidden checks pass{already}", checks)
    return verdict(Outcome.FAILED, _failures(checks), checks)


def _why_it_stopped(episode: Episode) -> str:
    """What a stop without a push owes the reader: replies cut at the response cap (a setting, not the
    model's choice) and, for an external agent, its exit status and last words."""
    notes = []
    if episode.truncated_replies:
        notes.append(f"{episode.truncated_replies} replies cut at max_response_tokens")
    if episode.transcript.agent_stop and episode.reason:  # set only for external agents
        notes.append(f"the agent: {episode.reason}")
    return "".join(f"; {note}" for note in notes)


def _failures(checks: CheckRun, shown: int = 5) -> str:
    names = ", ".join(checks.failed[:shown])
    more = f" and {len(checks.failed) - shown} more" if len(checks.failed) > shown else ""
    return f"{len(checks.failed)} of {checks.checks} hidden checks fail: {names}{more}"
