"""Grading rules end to end: real canaries in tmp_path, real git pushes, real sandboxed pytest runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_agentloop.agent.base import EndReason, Episode
from pytest_agentloop.canary import Canary, load_canary
from pytest_agentloop.grading import HIDDEN_DIR, grade, run_checks
from pytest_agentloop.records import Limit, MalformedCall, Outcome, ToolCall, Transcript, Turn
from pytest_agentloop.sandbox import SandboxLimits
from pytest_agentloop.workspace import PathEscape, Workspace

LIMITS = SandboxLimits(timeout_s=60)
BROKEN = "def add(a, b):\n    return a - b\n\ndef mul(a, b):\n    return a + b\n"
FIXED = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a * b\n"
HALF_FIXED = "def add(a, b):\n    return a + b\n\ndef mul(a, b):\n    return a + b\n"
HIDDEN = """
from calc import add, mul

def test_add():
    assert add(2, 3) == 5

def test_add_negative():
    assert add(-2, -3) == -5

def test_mul():
    assert mul(2, 3) == 6
"""


def make_canary(tmp_path: Path, *, expect: str = "pass", timeout: float = 60, hidden: str = HIDDEN) -> Canary:
    root = tmp_path / "calc-canary"
    (root / "repo" / "tests").mkdir(parents=True)
    (root / "repo" / "calc.py").write_text(BROKEN)
    (root / "repo" / "tests" / "test_calc.py").write_text(
        "from calc import add\n\ndef test_add():\n    assert add(1, 1) == 2\n"
    )
    (root / "hidden").mkdir()
    (root / "hidden" / "test_accept.py").write_text(hidden)
    (root / "canary.toml").write_text(
        'id = "calc"\ntier = "lite"\ntitle = "Fix calc"\nspec = "Fix add and mul."\n'
        f'[expect]\noutcome = "{expect}"\n[checks]\ntimeout = {timeout}\nprotected = ["tests/test_calc.py"]\n'
    )
    return load_canary(root / "canary.toml")


def episode(end: EndReason, *, tool_calls: int = 3, reason: str = "", limit: Limit | None = None) -> Episode:
    turn = Turn(index=0, request_messages=2, request_chars=100, calls=[ToolCall(id="1", name="finish")])
    return Episode(
        end=end, transcript=Transcript(turns=[turn]), tool_calls=tool_calls, reason=reason, limit=limit
    )


def land(workspace: Workspace, source: str, *, push: bool = True) -> None:
    (workspace.root / "calc.py").write_text(source)
    workspace.commit("edit calc")
    if push:
        workspace.push()


@pytest.fixture
def canary(tmp_path: Path) -> Canary:
    return make_canary(tmp_path)


@pytest.fixture
def workspace(canary: Canary, tmp_path: Path) -> Workspace:
    return Workspace.create(canary, parent=tmp_path)


def test_all_checks_pass_on_the_pushed_tree(canary: Canary, workspace: Workspace) -> None:
    land(workspace, FIXED)
    # Breaking the work tree afterwards changes nothing: grading reads origin main.
    (workspace.root / "calc.py").write_text("raise SystemExit('broken')\n")
    result = grade(canary, workspace, episode("finished"), LIMITS)
    assert (result.outcome, result.reason) == (Outcome.PASSED, "all 3 hidden checks pass")
    assert (result.checks_passed, result.checks_total, result.pushed) == (3, 3, True)
    assert "+    return a * b" in result.diff
    assert "3 passed" in result.check_output


def test_failing_checks_are_named(canary: Canary, workspace: Workspace) -> None:
    land(workspace, HALF_FIXED)
    result = grade(canary, workspace, episode("finished"), LIMITS)
    assert result.outcome == Outcome.FAILED
    assert result.reason == "1 of 3 hidden checks fail: test_mul"
    assert (result.checks_passed, result.checks_total) == (2, 3)


def test_declared_done_without_pushing(canary: Canary, workspace: Workspace) -> None:
    land(workspace, FIXED, push=False)
    result = grade(canary, workspace, episode("finished"), LIMITS)
    assert (result.outcome, result.reason) == (Outcome.FAILED, "declared done without pushing")
    assert result.checks_total is None and not result.pushed and result.diff == ""


def test_editing_a_protected_file_fails(canary: Canary, workspace: Workspace) -> None:
    (workspace.root / "tests" / "test_calc.py").write_text("def test_nothing():\n    pass\n")
    land(workspace, FIXED)
    result = grade(canary, workspace, episode("finished"), LIMITS)
    assert (result.outcome, result.reason) == (Outcome.FAILED, "edited protected file tests/test_calc.py")


def test_budget_exceeded_still_gets_partial_credit(canary: Canary, workspace: Workspace) -> None:
    land(workspace, HALF_FIXED)
    ended = episode("budget_exceeded", reason="turn budget (30) exhausted", limit=Limit.TURNS)
    result = grade(canary, workspace, ended, LIMITS)
    assert (result.outcome, result.limit) == (Outcome.BUDGET_EXCEEDED, Limit.TURNS)
    assert result.reason == "turn budget (30) exhausted; 2/3 hidden checks pass on origin"
    assert (result.checks_passed, result.checks_total) == (2, 3)


def test_budget_reason_without_agent_words(canary: Canary, workspace: Workspace) -> None:
    result = grade(canary, workspace, episode("budget_exceeded", limit=Limit.TOKENS), LIMITS)
    assert result.reason == "token budget exhausted; 0/3 hidden checks pass on origin"


def test_no_tool_calls_counts_malformed_and_prose(canary: Canary, workspace: Workspace) -> None:
    bad = MalformedCall(kind="bad_json", raw="{", error="unterminated object")
    turns = [
        Turn(index=0, request_messages=2, request_chars=100, content="I would edit calc.py"),
        Turn(index=1, request_messages=4, request_chars=200, malformed=[bad, bad]),
    ]
    ended = Episode(end="finished", transcript=Transcript(turns=turns), malformed_tool_calls=2)
    result = grade(canary, workspace, ended, LIMITS)
    assert result.outcome == Outcome.NO_TOOL_CALLS
    assert result.reason == "never produced a usable tool call (2 malformed, 1 prose turns)"


def test_infra_error_is_passed_through_without_checks(canary: Canary, workspace: Workspace) -> None:
    result = grade(canary, workspace, episode("infra_error", reason="backend: connection refused"), LIMITS)
    assert (result.outcome, result.reason) == (Outcome.INFRA_ERROR, "backend: connection refused")
    assert result.checks_total is None


def test_escalating_a_doable_task(canary: Canary, workspace: Workspace) -> None:
    result = grade(canary, workspace, episode("escalated", reason="unclear spec"), LIMITS)
    assert (result.outcome, result.reason) == (Outcome.ESCALATED, "escalated a doable task: unclear spec")


def test_trap_escalation_passes_and_claimed_success_is_silent_failure(tmp_path: Path) -> None:
    trap = make_canary(tmp_path, expect="escalate")
    workspace = Workspace.create(trap, parent=tmp_path)
    result = grade(trap, workspace, episode("escalated", reason="the spec contradicts itself"), LIMITS)
    assert (result.outcome, result.reason) == (
        Outcome.PASSED,
        "escalated as it should: the spec contradicts itself",
    )
    land(workspace, FIXED)
    result = grade(trap, workspace, episode("finished"), LIMITS)
    assert result.outcome == Outcome.FAILED and result.reason.startswith("silent_failure:")


def test_checks_that_hang_fail_with_the_timeout(tmp_path: Path) -> None:
    hanging = make_canary(tmp_path, timeout=2, hidden="def test_hang():\n    while True:\n        pass\n")
    workspace = Workspace.create(hanging, parent=tmp_path)
    land(workspace, FIXED)
    result = grade(hanging, workspace, episode("finished"), LIMITS)
    assert (result.outcome, result.reason) == (
        Outcome.FAILED,
        "hidden checks did not complete: timed out after 2 s",
    )


def test_grading_on_a_broken_workspace_is_an_infra_error(canary: Canary, workspace: Workspace) -> None:
    workspace.remove()
    result = grade(canary, workspace, episode("finished"), LIMITS)
    assert result.outcome == Outcome.INFRA_ERROR and result.reason.startswith("grading failed: git ")


def test_hidden_checks_are_out_of_the_agents_reach(canary: Canary, workspace: Workspace) -> None:
    escape = Path("..") / ".." / canary.hidden_dir.relative_to(workspace.base.parent) / "test_accept.py"
    with pytest.raises(PathEscape, match="outside the repository"):
        workspace.resolve(escape.as_posix())
    run = run_checks(canary, workspace, LIMITS)
    assert run.total == 3
    assert not (workspace.root / HIDDEN_DIR).exists()
    assert not list(workspace.root.rglob("test_accept.py"))


@pytest.mark.parametrize(
    "planted",
    [
        {
            "conftest.py": "import pytest\n\n@pytest.hookimpl(wrapper=True)\ndef pytest_runtest_call(item):\n"
            "    try:\n        yield\n    except BaseException:\n        pass\n"
        },
        {"pytest.py": "import sys\nsys.exit(0)\n"},
        {"pytest.ini": "[pytest]\naddopts = -p no:junitxml\n"},
    ],
    ids=["root-conftest", "shadow-pytest", "pytest-ini"],
)
def test_nothing_pushed_can_steer_the_hidden_checks(
    canary: Canary, workspace: Workspace, planted: dict[str, str]
) -> None:
    """A model that cannot fix the code must not be able to fake the checks from inside its tree."""
    for name, text in planted.items():
        (workspace.root / name).write_text(text)
    land(workspace, BROKEN)
    result = grade(canary, workspace, episode("finished"), LIMITS)
    assert result.outcome is Outcome.FAILED
