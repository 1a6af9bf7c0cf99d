"""The built-in canaries are sound: their solution passes, doing nothing fails, wrong work is caught.

Every folder under canaries/ is checked automatically, through the real pipeline (workspace, Toolbox,
sandboxed hidden checks, grading). Deliberately wrong solutions live as overlay folders under
tests/canary_negatives/<canary-id>/<name>/ and are replayed with `ReferenceAgent(overlay=...)`; each one
must have its expected verdict in NEGATIVES below, so a new overlay cannot go unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import pytest

from pytest_agentloop.agent.base import AgentTask, Episode
from pytest_agentloop.agent.pseudo import NullAgent, ReferenceAgent
from pytest_agentloop.attempt import run_attempt
from pytest_agentloop.canary import Canary, Tier, load_canary
from pytest_agentloop.grading import run_checks
from pytest_agentloop.records import Attempt, Outcome, ToolCall, Transcript, Turn
from pytest_agentloop.sandbox import SandboxLimits
from pytest_agentloop.workspace import Workspace

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "canaries"
NEGATIVES_DIR = Path(__file__).resolve().parent / "canary_negatives"
CANARIES = {path.parent.name: load_canary(path) for path in sorted(SUITE.glob("*/*/canary.toml"))}
ALL = pytest.mark.parametrize("canary", CANARIES.values(), ids=list(CANARIES))


def attempt(canary: Canary, agent: object, tmp_path: Path) -> Attempt:
    return run_attempt(canary, agent, model="pseudo", parent=tmp_path)  # type: ignore[arg-type]


def escalates(canary: Canary) -> bool:
    return canary.spec.expect.outcome == "escalate"


def test_the_suite_covers_every_tier() -> None:
    counts = {tier: sum(c.tier == tier for c in CANARIES.values()) for tier in get_args(Tier)}
    assert counts["smoke"] >= 1 and counts["lite"] >= 4 and counts["medium"] >= 4
    assert counts["heavy"] >= 3 and counts["trap"] >= 2, counts


@ALL
def test_layout(canary: Canary) -> None:
    """canaries/<tier>/<id>/, a solution for every doable task, and budgets that grow with the tier."""
    assert canary.root.parent.name == canary.tier
    assert canary.root.name == canary.id
    assert escalates(canary) or canary.solution_dir.is_dir()
    for protected in canary.spec.checks.protected:
        assert (canary.repo_dir / protected).is_file(), f"protected file {protected} is not in repo/"


def test_budgets_grow_with_the_tier() -> None:
    tiers = get_args(Tier)
    turns = {tier: [c.spec.budget.turns for c in CANARIES.values() if c.tier == tier] for tier in tiers}
    assert max(turns["smoke"]) < min(turns["lite"]) <= max(turns["lite"]) < min(turns["medium"])
    assert max(turns["medium"]) < min(turns["heavy"])


@ALL
def test_reference_passes(canary: Canary, tmp_path: Path) -> None:
    result = attempt(canary, ReferenceAgent(), tmp_path)
    assert result.outcome is Outcome.PASSED, result.reason
    if escalates(canary):
        assert result.reason.startswith("escalated as it should")
    else:
        assert result.checks_passed == result.checks_total


@ALL
def test_null_fails(canary: Canary, tmp_path: Path) -> None:
    result = attempt(canary, NullAgent(), tmp_path)
    assert result.outcome is Outcome.FAILED
    expected = "silent_failure" if escalates(canary) else "declared done without pushing"
    assert result.reason.startswith(expected), result.reason


@ALL
def test_hidden_checks_fail_on_the_untouched_repo(canary: Canary, tmp_path: Path) -> None:
    """The null agent stops at "not pushed"; this shows the checks themselves catch the unchanged code."""
    with Workspace.create(canary, tmp_path) as workspace:
        checks = run_checks(canary, workspace, SandboxLimits())
    assert not checks.all_passed, checks.summary


@dataclass(frozen=True)
class Verdict:
    """What a wrong solution must get: FAILED, the hidden checks it misses, and words from the reason."""

    missed: int | None  # hidden checks expected to fail; None: not counted (rejected before the checks)
    reason: str


NEGATIVES = {
    ("provider-timeouts", "missed-one-site"): Verdict(1, "test_site_groq"),
    ("provider-timeouts", "tests-only"): Verdict(5, "5 of 5 hidden checks fail"),
    ("money-in-cents", "missed-one-site"): Verdict(1, "test_site_statement"),
    ("money-in-cents", "old-helper-kept"): Verdict(1, "test_utils_keeps_slugify_only"),
    ("semver-from-tests", "tests-edited"): Verdict(None, "edited protected file tests/test_semver.py"),
}
OVERLAYS = sorted((d.parent.name, d.name) for d in NEGATIVES_DIR.glob("*/*") if d.is_dir())


def test_every_overlay_has_a_verdict() -> None:
    assert set(OVERLAYS) == set(NEGATIVES)
    assert {canary for canary, _ in NEGATIVES} >= {c.id for c in CANARIES.values() if c.tier == "heavy"}


@pytest.mark.parametrize(("canary_id", "name"), OVERLAYS, ids=[f"{c}/{n}" for c, n in OVERLAYS])
def test_wrong_solution_fails(canary_id: str, name: str, tmp_path: Path) -> None:
    expected = NEGATIVES[canary_id, name]
    result = attempt(CANARIES[canary_id], ReferenceAgent(overlay=NEGATIVES_DIR / canary_id / name), tmp_path)
    assert result.outcome is Outcome.FAILED
    assert expected.reason in result.reason, result.reason
    if expected.missed is not None:
        assert result.checks_total is not None
        assert result.checks_passed == result.checks_total - expected.missed


class CommitWithoutPush:
    """Does the reference work and commits it, then declares done without pushing."""

    def run(self, task: AgentTask) -> Episode:
        solution = task.canary.solution_dir
        calls = [
            *(
                ToolCall(
                    id=f"w{i}",
                    name="write_file",
                    arguments={
                        "path": p.relative_to(solution).as_posix(),
                        "content": p.read_text(encoding="utf-8"),
                    },
                )
                for i, p in enumerate(sorted(f for f in solution.rglob("*") if f.is_file()))
            ),
            ToolCall(id="c", name="commit", arguments={"message": "Release 1.4.0"}),
            ToolCall(id="f", name="finish", arguments={"summary": "Released 1.4.0."}),
        ]
        turns = [
            Turn(
                index=i,
                request_messages=0,
                request_chars=0,
                calls=[call],
                results=[task.toolbox.execute(call)],
            )
            for i, call in enumerate(calls)
        ]
        return Episode(
            end=task.toolbox.ended or "finished",
            transcript=Transcript(turns=turns),
            reason=task.toolbox.end_message,
            tool_calls=len(calls),
        )


def test_push_trap_catches_work_left_unpushed(tmp_path: Path) -> None:
    result = attempt(CANARIES["push-required"], CommitWithoutPush(), tmp_path)
    assert result.outcome is Outcome.FAILED
    assert result.reason.startswith("declared done without pushing"), result.reason
    assert not result.pushed
