"""Grading rules end to end: real canaries in tmp_path, real git pushes, real sandboxed pytest runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pytest_agentloop.agent.base import Episode
from pytest_agentloop.agent.pseudo import NullAgent, ReferenceAgent
from pytest_agentloop.attempt import run_attempt
from pytest_agentloop.canary import Canary, CanaryError, load_canary
from pytest_agentloop.grading import HIDDEN_DIR, grade, run_checks
from pytest_agentloop.records import Limit, MalformedCall, Outcome, Transcript, Turn
from pytest_agentloop.sandbox import SandboxPolicy
from pytest_agentloop.workspace import PathEscape, Workspace
from tests.support.calc_canary import BROKEN, FIXED, HALF_FIXED, HIDDEN, episode, land, make_canary

LIMITS = SandboxPolicy(timeout_s=60)


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
    # Consistent partial credit: nothing reached origin, so nothing beyond the starting repo counts.
    assert (result.checks_passed, result.checks_total, result.checks_baseline) == (0, 3, 0)
    assert not result.pushed and result.diff == ""


def test_a_stop_without_a_push_names_replies_cut_at_the_response_cap(
    canary: Canary, workspace: Workspace
) -> None:
    """Replies cut at max_response_tokens are a setting's doing: the reason says so beside the verdict."""
    land(workspace, FIXED, push=False)
    cut = replace(episode("finished"), truncated_replies=2)
    result = grade(canary, workspace, cut, LIMITS)
    assert result.reason == "declared done without pushing; 2 replies cut at max_response_tokens"


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


# The broken add (a - b) already passes test_add_zero.
BASELINE_PASSES_ONE = HIDDEN + "\ndef test_add_zero():\n    assert add(0, 0) == 0\n"


def test_checks_the_starting_repo_passes_are_not_the_models_work(tmp_path: Path) -> None:
    canary = make_canary(tmp_path, hidden=BASELINE_PASSES_ONE)
    with Workspace.create(canary, parent=tmp_path) as workspace:
        untouched = grade(canary, workspace, episode("finished"), LIMITS)
        land(workspace, HALF_FIXED)
        half = grade(canary, workspace, episode("finished"), LIMITS)
        land(workspace, FIXED)
        fixed = grade(canary, workspace, episode("finished"), LIMITS)
    assert (untouched.checks_passed, untouched.checks_total, untouched.checks_baseline) == (0, 3, 1)
    assert (half.checks_passed, half.checks_total, half.checks_baseline) == (2, 3, 1)
    assert half.reason == "1 of 4 hidden checks fail: test_mul"
    assert (fixed.outcome, fixed.reason) == (
        Outcome.PASSED,
        "all 4 hidden checks pass (1 already passed on the starting repo)",
    )
    assert (fixed.checks_passed, fixed.checks_total, fixed.checks_baseline) == (3, 3, 1)


def test_breaking_a_check_the_baseline_passed_fails_the_attempt(tmp_path: Path) -> None:
    canary = make_canary(tmp_path, hidden=BASELINE_PASSES_ONE)
    with Workspace.create(canary, parent=tmp_path) as workspace:
        land(
            workspace,
            "def add(a, b):\n    return a + b + 0.5 * (a == b == 0)\n\ndef mul(a, b):\n    return a * b\n",
        )
        result = grade(canary, workspace, episode("finished"), LIMITS)
    assert result.outcome is Outcome.FAILED and result.reason == "1 of 4 hidden checks fail: test_add_zero"
    assert (result.checks_passed, result.checks_total, result.checks_baseline) == (3, 3, 1)


SQUARE_CHECKS = """
from squares import square

def test_square():
    assert square(3) == 9

def test_square_zero():
    assert square(0) == 0
"""


def test_a_file_that_fails_to_collect_counts_all_its_checks(tmp_path: Path) -> None:
    """A syntax error in one module fails that file's checks, counted from the baseline; the rest count."""
    canary = make_canary(
        tmp_path,
        extra_hidden={"test_square.py": SQUARE_CHECKS},
        extra_repo={"squares.py": "def square(x):\n    return x + x\n"},
    )
    with Workspace.create(canary, parent=tmp_path) as workspace:
        land(workspace, FIXED, files={"squares.py": "def square(x) x * x\n"})
        result = grade(canary, workspace, episode("finished"), LIMITS)
    # square(0) == 0 passed on the starting repo; square(3) did not: 3 of add/mul + 1 gained possible.
    assert (result.checks_passed, result.checks_total, result.checks_baseline) == (3, 4, 1)
    assert result.reason == "2 of 5 hidden checks fail: test_square, test_square_zero"
    assert "ERROR collecting .agentloop_hidden/test_square.py" in result.check_output
    assert "SyntaxError" in result.check_output


def test_a_file_the_baseline_cannot_collect_counts_as_one_check(tmp_path: Path) -> None:
    canary = make_canary(tmp_path, extra_hidden={"test_square.py": SQUARE_CHECKS})
    with Workspace.create(canary, parent=tmp_path) as workspace:
        land(workspace, FIXED)
        missing = grade(canary, workspace, episode("finished"), LIMITS)
        land(workspace, FIXED, files={"squares.py": "def square(x):\n    return x * x\n"})
        done = grade(canary, workspace, episode("finished"), LIMITS)
    assert (missing.checks_passed, missing.checks_total) == (3, 4)
    assert missing.reason == "1 of 4 hidden checks fail: test_square.py (did not collect)"
    assert (done.outcome, done.checks_passed, done.checks_total) == (Outcome.PASSED, 5, 5)


SKIPPING = """
import pytest
from calc import add

def test_add():
    assert add(2, 3) == 5

@pytest.mark.skip(reason="platform")
def test_skipped():
    assert False

@pytest.mark.xfail(reason="known")
def test_xfailed():
    assert add(2, 2) == 5
"""


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("", (Outcome.FAILED, 1, 3, "2 of 3 hidden checks fail: test_skipped, test_xfailed")),
        ('skipped = "exclude"', (Outcome.FAILED, 1, 2, "1 of 2 hidden checks fail: test_xfailed")),
        (
            'skipped = "exclude"\nxfailed = "pass"',
            (Outcome.PASSED, 1, 1, "all 2 hidden checks pass (1 already passed on the starting repo)"),
        ),
    ],
    ids=["default-both-fail", "skips-excluded", "skips-excluded-xfail-passes"],
)
def test_skip_and_xfail_policy(tmp_path: Path, policy: str, expected: tuple[Outcome, int, int, str]) -> None:
    canary = make_canary(tmp_path, hidden=SKIPPING, checks_extra=policy)
    with Workspace.create(canary, parent=tmp_path) as workspace:
        land(workspace, FIXED)
        result = grade(canary, workspace, episode("finished"), LIMITS)
    assert (result.outcome, result.checks_passed, result.checks_total, result.reason) == expected


def test_a_missing_requirement_is_an_infra_error_naming_it(tmp_path: Path) -> None:
    canary = make_canary(tmp_path, toml_extra='requires = ["pytest>=7", "no-such-package-agentloop>=1"]')
    result = run_attempt(canary, ReferenceAgent(overlay=tmp_path), model="pseudo", parent=tmp_path)
    assert result.outcome is Outcome.INFRA_ERROR
    assert result.reason == (
        "canary calc requires no-such-package-agentloop>=1: not installed in the sandbox's Python; "
        "install it there and rerun"
    )
    assert result.turns == 0


def test_a_wrong_version_is_named(tmp_path: Path) -> None:
    canary = make_canary(tmp_path, toml_extra='requires = ["pytest<1"]')
    result = run_attempt(canary, NullAgent(), model="pseudo", parent=tmp_path)
    assert result.outcome is Outcome.INFRA_ERROR and "pytest<1: version " in result.reason


def test_declared_requirements_that_are_installed_change_nothing(tmp_path: Path) -> None:
    canary = make_canary(tmp_path, toml_extra='requires = ["pydantic>=2"]')
    with Workspace.create(canary, parent=tmp_path) as workspace:
        land(workspace, "import pydantic\n" + FIXED)
        result = grade(canary, workspace, episode("finished"), LIMITS)
    assert result.outcome is Outcome.PASSED and "not declared" not in result.check_output


def test_a_misspelled_protected_path_stops_collection(tmp_path: Path) -> None:
    canary = make_canary(tmp_path)
    toml = canary.root / "canary.toml"
    toml.write_text(toml.read_text().replace("tests/test_calc.py", "tests/test_calcs.py"))
    with pytest.raises(CanaryError) as raised:
        load_canary(toml)
    assert str(raised.value) == (
        f"{toml}: field 'checks.protected': 'tests/test_calcs.py' is not a file in repo/, so it "
        "protects nothing; fix the path."
    )


def test_tier_and_id_must_match_a_tier_folder(tmp_path: Path) -> None:
    with pytest.raises(CanaryError, match="field 'tier': 'lite' but the canary sits in folder 'medium/'"):
        make_canary(tmp_path / "medium", folder="calc")  # tier "lite" in a folder named for another tier
    with pytest.raises(CanaryError, match="field 'id': 'calc' but the folder is named 'calculator/'"):
        make_canary(tmp_path / "lite", folder="calculator")
    assert make_canary(tmp_path / "anywhere", folder="whatever").id == "calc"  # not a tier folder: loads


def test_the_loops_no_push_reason_carries_no_agent_stop(canary: Canary, workspace: Workspace) -> None:
    """Only an external agent has an exit status and last words; the loop's finish summary stays out."""
    land(workspace, FIXED, push=False)
    result = grade(canary, workspace, episode("finished", reason="All done."), LIMITS)
    assert result.reason == "declared done without pushing"
