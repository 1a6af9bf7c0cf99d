"""A two-function canary with three hidden checks, built in tmp_path: the fixture of the grading tests.

`add` subtracts and `mul` adds; the hidden checks want both right, so a tree can be graded fixed
(3/3), half fixed (2/3) or untouched (0/3), and an attack can be pushed beside any of them.
"""

from __future__ import annotations

from pathlib import Path

from pytest_agentloop.agent.base import EndReason, Episode
from pytest_agentloop.canary import Canary, load_canary
from pytest_agentloop.records import Limit, ToolCall, Transcript, Turn
from pytest_agentloop.workspace import Workspace

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


def make_canary(
    tmp_path: Path,
    *,
    expect: str = "pass",
    timeout: float = 60,
    hidden: str = HIDDEN,
    extra_hidden: dict[str, str] | None = None,
    extra_repo: dict[str, str] | None = None,
    toml_extra: str = "",
    checks_extra: str = "",
    folder: str = "calc-canary",
) -> Canary:
    root = tmp_path / folder
    (root / "repo" / "tests").mkdir(parents=True)
    (root / "repo" / "calc.py").write_text(BROKEN)
    (root / "repo" / "tests" / "test_calc.py").write_text(
        "from calc import add\n\ndef test_add():\n    assert add(1, 1) == 2\n"
    )
    (root / "hidden").mkdir()
    (root / "hidden" / "test_accept.py").write_text(hidden)
    for name, text in (extra_hidden or {}).items():
        (root / "hidden" / name).write_text(text)
    for name, text in (extra_repo or {}).items():
        (root / "repo" / name).write_text(text)
    (root / "canary.toml").write_text(
        f'id = "calc"\ntier = "lite"\ntitle = "Fix calc"\nspec = "Fix add and mul."\n{toml_extra}\n'
        f'[expect]\noutcome = "{expect}"\n[checks]\ntimeout = {timeout}\nprotected = ["tests/test_calc.py"]\n'
        f"{checks_extra}\n"
    )
    return load_canary(root / "canary.toml")


def episode(end: EndReason, *, tool_calls: int = 3, reason: str = "", limit: Limit | None = None) -> Episode:
    turn = Turn(index=0, request_messages=2, request_chars=100, calls=[ToolCall(id="1", name="finish")])
    return Episode(
        end=end, transcript=Transcript(turns=[turn]), tool_calls=tool_calls, reason=reason, limit=limit
    )


def land(
    workspace: Workspace, source: str, *, push: bool = True, files: dict[str, str] | None = None
) -> None:
    """Write calc.py (and any other files), commit, and push unless told not to."""
    for name, text in {"calc.py": source, **(files or {})}.items():
        path = workspace.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    workspace.commit("edit calc")
    if push:
        workspace.push()
