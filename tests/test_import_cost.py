"""Sessions that are not about agentloop pay nothing for it: no pydantic, no runner, no canary model."""

from __future__ import annotations

import pytest

CONFTEST = """
import sys

def pytest_sessionfinish(session):
    loaded = sorted(m for m in sys.modules if m.startswith(("pydantic", "pytest_agentloop")))
    print("\\nLOADED", ",".join(loaded))
"""


def loaded_modules(result: pytest.RunResult) -> set[str]:
    (line,) = [line for line in result.stdout.lines if "LOADED " in line]
    return set(line.split("LOADED ", 1)[1].strip().split(","))


def test_a_plain_session_imports_neither_pydantic_nor_the_runner(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    loaded = loaded_modules(result)
    assert "pytest_agentloop.plugin" in loaded, "the plugin must be loaded for this test to mean anything"
    assert not {m for m in loaded if m.startswith("pydantic")}, loaded
    heavy = {"runner", "items", "canary", "records", "config", "results", "session", "store"}
    assert not {m for m in loaded if m.split(".")[1:2] and m.split(".")[1] in heavy}, loaded


def test_an_agentloop_session_does_load_them(pytester: pytest.Pytester) -> None:
    """The adversary of the test above: the same probe sees the heavy modules when they are used."""
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-s", "-p", "no:randomly", "--agent-model=reference")
    result.assert_outcomes(passed=1)
    loaded = loaded_modules(result)
    assert {"pydantic", "pytest_agentloop.runner", "pytest_agentloop.session"} <= loaded
