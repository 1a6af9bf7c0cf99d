"""The built-in canaries are sound: their solution passes, doing nothing fails, wrong work is caught.

Every folder under canaries/ is checked automatically with `agentloop validate`'s own code
(tests/test_validate.py shows it catching deliberately broken canaries), through the real pipeline
(workspace, Toolbox, sandboxed hidden checks, grading). Deliberately wrong solutions live as overlay
folders under tests/canary_negatives/<canary-id>/<name>/ and are replayed with
`ReferenceAgent(overlay=...)`; each one must have its expected verdict in NEGATIVES below, so a new
overlay cannot go unchecked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import pytest

from pytest_agentloop import CANARY_FILE
from pytest_agentloop.agent.base import AgentTask, Episode
from pytest_agentloop.agent.pseudo import ReferenceAgent
from pytest_agentloop.attempt import run_attempt
from pytest_agentloop.canary import Canary, Tier, load_canary
from pytest_agentloop.records import Attempt, Outcome, ToolCall, Transcript, Turn
from pytest_agentloop.sandbox import SandboxPolicy
from pytest_agentloop.validate import validate_canary

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


def test_budgets_grow_with_the_tier() -> None:
    tiers = get_args(Tier)
    turns = {tier: [c.spec.budget.turns for c in CANARIES.values() if c.tier == tier] for tier in tiers}
    assert max(turns["smoke"]) < min(turns["lite"]) <= max(turns["lite"]) < min(turns["medium"])
    assert max(turns["medium"]) < min(turns["heavy"])


@ALL
def test_validate_finds_the_canary_sound(canary: Canary, tmp_path: Path) -> None:
    """`agentloop validate` on each built-in canary: reference passes, null and the untouched push fail,
    layout rules hold (id, tier, protected paths, solution, every hidden file collects), nothing
    undeclared is imported."""
    report = validate_canary(canary.root / CANARY_FILE, SandboxPolicy(), parent=tmp_path)
    assert report.problems == []
    assert report.reference is not None and report.null is not None
    if escalates(canary):
        assert report.reference.reason.startswith("escalated as it should")
        assert report.null.reason.startswith("silent_failure")
    else:
        assert report.reference.checks_passed == report.reference.checks_total
        assert report.null.reason.startswith("declared done without pushing")
        # Nothing reached origin: the null agent is credited nothing beyond the starting repo.
        assert report.null.checks_passed == 0
        assert report.null.checks_baseline == report.reference.checks_baseline


@dataclass(frozen=True)
class Expected:
    """What a wrong solution must get: FAILED, the hidden checks it misses, and words from the reason."""

    missed: int | None  # hidden checks expected to fail; None: not counted (rejected before the checks)
    reason: str


NEGATIVES = {
    ("provider-timeouts", "missed-one-site"): Expected(1, "test_site_groq"),
    ("provider-timeouts", "tests-only"): Expected(5, "5 of 5 hidden checks fail"),
    ("money-in-cents", "missed-one-site"): Expected(1, "test_site_statement"),
    ("money-in-cents", "old-helper-kept"): Expected(1, "test_utils_keeps_slugify_only"),
    ("semver-from-tests", "tests-edited"): Expected(None, "edited protected file tests/test_semver.py"),
}
OVERLAYS = sorted((d.parent.name, d.name) for d in NEGATIVES_DIR.glob("*/*") if d.is_dir())


def test_every_overlay_has_an_expectation() -> None:
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
