"""The agent's tools against a real workspace (real git, real sandboxed test runs)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.agent.tools import OUTPUT_CAP, TOOL_ARGS, Toolbox, cap_output
from pytest_agentloop.canary import load_canary
from pytest_agentloop.records import ToolCall, ToolResult
from pytest_agentloop.sandbox import SandboxPolicy
from pytest_agentloop.workspace import Workspace
from tests.support.tiny_canary import write_tiny_canary


@pytest.fixture
def toolbox(tmp_path: Path) -> Iterator[Toolbox]:
    canary = load_canary(write_tiny_canary(tmp_path / "canary"))
    with Workspace.create(canary, parent=tmp_path) as workspace:
        yield Toolbox(workspace, canary.spec.test_command, SandboxPolicy(timeout_s=60))


def call(box: Toolbox, name: str, **arguments: Any) -> ToolResult:
    return box.execute(ToolCall(id="c", name=name, arguments=arguments))


def test_schemas_come_from_the_argument_models() -> None:
    from pytest_agentloop.agent.tools import tool_schemas

    schemas = {s["function"]["name"]: s["function"] for s in tool_schemas()}
    assert list(schemas) == list(TOOL_ARGS)
    assert schemas["edit_file"]["parameters"]["required"] == ["path", "old", "new"]
    assert schemas["edit_file"]["parameters"]["additionalProperties"] is False
    assert schemas["run_tests"]["parameters"]["properties"] == {}
    assert all(s["description"] for s in schemas.values())


def test_read_and_list(toolbox: Toolbox) -> None:
    assert call(toolbox, "read_file", path="calc.py").output == "def add(a, b):\n    return a - b\n"
    listing = call(toolbox, "list_files")
    assert listing.ok and listing.output.splitlines() == ["calc.py", "test_calc.py"]


@pytest.mark.parametrize(
    ("name", "arguments", "words"),
    [
        ("read_file", {"path": "nope.py"}, "no file 'nope.py'; use list_files"),
        ("read_file", {"path": "."}, "is a folder"),
        ("list_files", {"path": "nowhere"}, "no folder 'nowhere'"),
        ("edit_file", {"path": "calc.py", "old": "a + b", "new": "x"}, "occurs 0 times"),
        ("edit_file", {"path": "calc.py", "old": "", "new": "x"}, "`old` is empty"),
        ("read_file", {}, "'path' is missing"),
        ("rm_rf", {}, "unknown tool 'rm_rf'"),
    ],
)
def test_errors_come_back_as_results(
    toolbox: Toolbox, name: str, arguments: dict[str, Any], words: str
) -> None:
    result = call(toolbox, name, **arguments)
    assert not result.ok and not result.changed
    assert words in result.output


def test_edit_must_match_exactly_once(toolbox: Toolbox) -> None:
    result = call(toolbox, "edit_file", path="calc.py", old="a", new="b")
    assert not result.ok and "occurs 3 times" in result.output and "more surrounding lines" in result.output
    result = call(toolbox, "edit_file", path="calc.py", old="a - b", new="a + b")
    assert result.ok and result.changed
    assert (toolbox.workspace.root / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"


def test_write_creates_folders_and_reports_no_ops(toolbox: Toolbox) -> None:
    first = call(toolbox, "write_file", path="pkg/new.py", content="X = 1\n")
    assert first.ok and first.changed
    assert (toolbox.workspace.root / "pkg" / "new.py").read_text() == "X = 1\n"
    again = call(toolbox, "write_file", path="pkg/new.py", content="X = 1\n")
    assert again.ok and not again.changed and again.redundant and "no change" in again.output
    same = call(toolbox, "edit_file", path="calc.py", old="a - b", new="a - b")
    assert same.ok and not same.changed and "no change" in same.output


def test_tests_commit_push_finish(toolbox: Toolbox) -> None:
    failing = call(toolbox, "run_tests")
    assert failing.ok and "failed (exit code 1)" in failing.output and "assert" in failing.output
    assert not call(toolbox, "commit", message="nothing yet").changed
    call(toolbox, "edit_file", path="calc.py", old="a - b", new="a + b")
    passing = call(toolbox, "run_tests")
    assert "passed" in passing.output.splitlines()[0]
    assert call(toolbox, "commit", message="Fix add").changed
    assert not toolbox.workspace.pushed()
    pushed = call(toolbox, "push")
    assert pushed.changed and toolbox.workspace.pushed()
    assert not call(toolbox, "push").changed
    assert toolbox.ended is None
    call(toolbox, "finish", summary="Fixed add.")
    assert (toolbox.ended, toolbox.end_message) == ("finished", "Fixed add.")


def test_escalate_ends_with_the_reason(toolbox: Toolbox) -> None:
    assert call(toolbox, "escalate", reason="The spec contradicts itself.").ok
    assert (toolbox.ended, toolbox.end_message) == ("escalated", "The spec contradicts itself.")


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/etc/passwd", "absolute paths are not allowed"),
        ("../outside.txt", "outside the repository"),
        ("sub/../../outside.txt", "outside the repository"),
        (".git/config", ".git is managed by the harness"),
        ("escape/secret.txt", "outside the repository"),
    ],
)
def test_paths_stay_inside_the_workspace(toolbox: Toolbox, tmp_path: Path, path: str, words: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    os.symlink(outside, toolbox.workspace.root / "escape")
    for name, extra in (("read_file", {}), ("write_file", {"content": "x"})):
        result = call(toolbox, name, path=path, **extra)
        assert not result.ok and words in result.output
    assert (outside / "secret.txt").read_text() == "secret"
    assert not (tmp_path / "outside.txt").exists()


def test_redundancy_resets_only_on_real_changes(toolbox: Toolbox) -> None:
    flags = [
        call(toolbox, "read_file", path="calc.py").redundant,
        call(toolbox, "read_file", path="calc.py").redundant,  # nothing changed since
        call(toolbox, "run_tests").redundant,
        call(toolbox, "run_tests").redundant,
        call(toolbox, "commit", message="m").redundant,  # nothing to commit: no change
        call(toolbox, "read_file", path="calc.py").redundant,
        call(toolbox, "write_file", path="calc.py", content="def add(a, b):\n    return a + b\n").redundant,
        call(toolbox, "read_file", path="calc.py").redundant,  # the file changed: worth reading again
        call(toolbox, "run_tests").redundant,
    ]
    assert flags == [False, True, False, True, False, True, False, False, False]


def test_output_is_capped_with_a_note(toolbox: Toolbox) -> None:
    call(toolbox, "write_file", path="big.txt", content="".join(f"line {i}\n" for i in range(5_000)))
    output = call(toolbox, "read_file", path="big.txt").output
    assert len(output) < OUTPUT_CAP + 100
    assert "characters cut" in output and output.startswith("line 0\n") and output.endswith("line 4999\n")


def test_cap_leaves_short_text_alone() -> None:
    assert cap_output("short") == "short"
    capped = cap_output("x" * 100, limit=40)
    assert "[... 60 characters cut ...]" in capped
