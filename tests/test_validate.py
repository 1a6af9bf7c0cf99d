"""`agentloop validate` against deliberately broken canaries: each flaw is one line naming it.

The canaries are the tiny canary (tests/support/tiny_canary.py) laid out as a suite, `<tier>/<id>/`,
then broken one way each. Every run goes through the real pipeline (workspace, pseudo-agents,
sandboxed hidden checks); the sound canary next to them shows validate does not cry wolf.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_agentloop.cli import main
from pytest_agentloop.records import Outcome
from pytest_agentloop.sandbox import SandboxPolicy
from pytest_agentloop.validate import find_canaries, validate_canary
from tests.support.tiny_canary import write_tiny_canary

LIMITS = SandboxPolicy()


def suite_canary(root: Path, id: str = "tiny", tier: str = "smoke") -> Path:
    return write_tiny_canary(root / tier / id, id=id, tier=tier)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def vacuous(toml: Path) -> None:
    """The hidden check already passes on the starting repo (it only tests `add(0, 0)`)."""
    (toml.parent / "hidden" / "test_hidden.py").write_text(
        "from calc import add\n\n\ndef test_zero():\n    assert add(0, 0) == 0\n"
    )


def broken_solution(toml: Path) -> None:
    (toml.parent / "solution" / "calc.py").write_text("def add(a, b):\n    return a * b\n")


def not_collecting(toml: Path) -> None:
    """A second hidden file imports, at module level, a module the agent must create."""
    (toml.parent / "hidden" / "test_more.py").write_text(
        "from newmod import triple\n\n\ndef test_triple():\n    assert triple(2) == 6\n"
    )
    (toml.parent / "solution" / "newmod.py").write_text("def triple(x):\n    return 3 * x\n")


def empty_hidden_file(toml: Path) -> None:
    (toml.parent / "hidden" / "test_empty.py").write_text("HELPER = 1\n")


def missing_requirement(toml: Path) -> None:
    edit(toml, 'tier = "smoke"\n', 'tier = "smoke"\nrequires = ["no-such-package-agentloop"]\n')


def undeclared_import(toml: Path) -> None:
    hidden = toml.parent / "hidden" / "test_hidden.py"
    hidden.write_text("import pydantic  # in the harness's environment only\n" + hidden.read_text())


def misspelled_protected(toml: Path) -> None:
    toml.write_text(toml.read_text() + '\n[checks]\nprotected = ["test_calcs.py"]\n')


def wrong_tier(toml: Path) -> None:
    edit(toml, 'tier = "smoke"', 'tier = "lite"')


def wrong_id(toml: Path) -> None:
    edit(toml, 'id = "tiny"', 'id = "tiny-two"')


def no_solution(toml: Path) -> None:
    for path in (toml.parent / "solution").iterdir():
        path.unlink()
    (toml.parent / "solution").rmdir()


def null_passes(toml: Path) -> None:
    """A canary that does not need the push, and whose checks pass untouched: null 'succeeds'."""
    vacuous(toml)
    toml.write_text(toml.read_text() + "\n[expect]\npushed = false\n")


BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    "vacuous": (
        vacuous,
        "the hidden checks all pass on the untouched starting repo (1/1): the canary measures nothing; "
        "make the checks test the change",
    ),
    "broken-solution": (
        broken_solution,
        "the reference solution does not pass: 1 of 1 hidden checks fail: test_sum",
    ),
    "not-collecting": (
        not_collecting,
        "hidden/test_more.py does not collect on the starting repo (E   ModuleNotFoundError: No module named "
        "'newmod'), so its checks cannot be counted one by one; import what the agent must create inside the "
        "tests",
    ),
    "empty-hidden-file": (
        empty_hidden_file,
        "hidden/test_empty.py collects no check; add tests to it or remove it",
    ),
    "missing-requirement": (
        missing_requirement,
        "canary tiny requires no-such-package-agentloop: not installed in the sandbox's Python; "
        "install it there and rerun",
    ),
    "undeclared-import": (
        undeclared_import,
        "the hidden checks import pydantic from the harness environment; declare it in `requires` or use "
        "the standard library",
    ),
    "misspelled-protected": (
        misspelled_protected,
        "field 'checks.protected': 'test_calcs.py' is not a file in repo/, so it protects nothing; "
        "fix the path.",
    ),
    "wrong-tier": (
        wrong_tier,
        "field 'tier': 'lite' but the canary sits in folder 'smoke/'; move it to 'lite/' or fix the tier.",
    ),
    "wrong-id": (
        wrong_id,
        "field 'id': 'tiny-two' but the folder is named 'tiny/'; rename one so they match.",
    ),
    "no-solution": (
        no_solution,
        "folder 'solution/' is missing; a doable canary needs its reference solution.",
    ),
    "null-passes": (
        null_passes,
        "the null agent is not failed (passed): all 1 hidden checks pass "
        "(1 already passed on the starting repo)",
    ),
}


@pytest.mark.parametrize(("breakage", "problem"), list(BROKEN.values()), ids=list(BROKEN))
def test_each_flaw_is_one_line_naming_it(
    tmp_path: Path, breakage: Callable[[Path], None], problem: str
) -> None:
    toml = suite_canary(tmp_path / "suite")
    breakage(toml)
    report = validate_canary(toml, LIMITS, parent=tmp_path)
    assert problem in report.problems, report.problems
    assert all("\n" not in line for line in report.problems)


def test_a_sound_canary_has_no_problem(tmp_path: Path) -> None:
    toml = suite_canary(tmp_path / "suite")
    report = validate_canary(toml, LIMITS, parent=tmp_path)
    assert report.problems == []
    assert report.reference is not None and report.reference.outcome is Outcome.PASSED
    assert report.null is not None and report.null.outcome is Outcome.FAILED
    assert report.untouched == "0/1 hidden checks pass"


def test_the_untouched_push_reports_the_baselines_partial_credit(tmp_path: Path) -> None:
    toml = suite_canary(tmp_path / "suite")
    (toml.parent / "hidden" / "test_zero.py").write_text(
        "from calc import add\n\n\ndef test_zero():\n    assert add(0, 0) == 0\n"
    )
    report = validate_canary(toml, LIMITS, parent=tmp_path)
    assert report.problems == [] and report.untouched == "1/2 hidden checks pass"
    assert (report.reference.checks_passed, report.reference.checks_total) == (1, 1)  # type: ignore[union-attr]
    assert report.reference.checks_baseline == 1  # type: ignore[union-attr]


def test_canaries_are_found_once_and_never_inside_another(tmp_path: Path) -> None:
    first = suite_canary(tmp_path, "a")
    second = suite_canary(tmp_path, "b", tier="lite")
    (first.parent / "repo" / "canary.toml").write_text("a repo file that happens to have this name\n")
    assert find_canaries([tmp_path, first.parent, second]) == [second, first]


def test_the_command_prints_one_line_per_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sound = suite_canary(tmp_path, "good")
    bad = suite_canary(tmp_path, "bad")
    vacuous(bad)
    undeclared_import(bad)
    assert main(["validate", str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("FAIL  smoke/bad: ") and lines[0].endswith(
        "untouched push 1/1 hidden checks pass"
    )
    assert lines[1:3] == [
        f"  {bad}: the hidden checks import pydantic from the harness environment; declare it in `requires` "
        "or use the standard library",
        f"  {bad}: the hidden checks all pass on the untouched starting repo (1/1): the canary measures "
        "nothing; make the checks test the change",
    ]
    assert (
        lines[3] == "ok    smoke/good: reference passed, null failed, untouched push 0/1 hidden checks pass"
    )
    assert lines[4] == "1 of 2 canaries sound, 1 with problems"
    assert main(["validate", str(sound.parent)]) == 0


def test_nothing_to_validate_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    assert capsys.readouterr().out == f"agentloop validate: no canary.toml under {tmp_path}\n"
