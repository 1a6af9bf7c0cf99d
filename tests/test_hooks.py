"""The plugin's hooks, implemented in pytester conftest.py files as a user would.

The custom-backend example (examples/conftest_custom_backend.py) runs against a real loopback
"tinyserve" runtime: an HTTP server in this process that speaks its own small API and replies
with a fixed script that solves the tiny canary.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.tiny_canary import FILES, write_tiny_canary

ROOT = Path(__file__).resolve().parents[1]
SCRIPT: list[tuple[str, dict[str, Any]]] = [
    ("write_file", {"path": "calc.py", "content": FILES["solution/calc.py"]}),
    ("run_tests", {}),
    ("commit", {"message": "Fix add()"}),
    ("push", {}),
    ("finish", {"summary": "add() now adds"}),
]


class TinyServe(BaseHTTPRequestHandler):
    """POST /generate: the next call of SCRIPT, chosen by how many replies the history holds."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        turn = sum(1 for message in body["messages"] if message["role"] == "assistant")
        name, arguments = SCRIPT[min(turn, len(SCRIPT) - 1)]
        reply = json.dumps(
            {
                "text": "",
                "calls": [{"name": name, "arguments": arguments}],
                "prompt_tokens": 100,
                "completion_tokens": 10,
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output is the plugin's."""


@pytest.fixture
def tinyserve() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TinyServe)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def tiny(pytester: pytest.Pytester) -> Path:
    return write_tiny_canary(pytester.path / "canaries" / "tiny")


def test_conftest_adds_a_backend_for_an_unknown_runtime(
    pytester: pytest.Pytester, tiny: Path, tinyserve: str
) -> None:
    shutil.copy(ROOT / "examples" / "conftest_custom_backend.py", pytester.path / "conftest.py")
    result = pytester.runpytest(
        str(tiny), "--agent-model=tinyserve:toy", f"--agent-host={tinyserve}", "--agent-json=r.json"
    )
    result.assert_outcomes(passed=1)
    (record,) = json.loads((pytester.path / "r.json").read_text())["attempts"]
    assert record["turns"] == len(SCRIPT)
    assert record["prompt_tokens"] == 100 * len(SCRIPT)
    assert record["model_info"]["runtime"] == "tinyserve"


def test_a_spec_no_hook_builds_is_refused_on_its_first_item(pytester: pytest.Pytester, tiny: Path) -> None:
    shutil.copy(ROOT / "examples" / "conftest_custom_backend.py", pytester.path / "conftest.py")
    result = pytester.runpytest(str(tiny), "--agent-model=nosuch:model")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "unknown backend 'nosuch'" in result.stdout.str() + result.stderr.str()


def test_make_agent_hook_selects_its_own_agent(pytester: pytest.Pytester, tiny: Path) -> None:
    pytester.makeconftest(
        """
        from pytest_agentloop.agent.pseudo import NullAgent, ReferenceAgent

        def pytest_agentloop_make_agent(spec, cell):
            if spec.backend == "house":
                return ReferenceAgent() if spec.model == "good" else NullAgent()
        """
    )
    result = pytester.runpytest(str(tiny), "--agent-model=house:good", "--agent-model=house:lazy")
    result.assert_outcomes(passed=1, failed=1)


def test_python_agent_is_selected_by_its_spec(pytester: pytest.Pytester, tiny: Path) -> None:
    pytester.makepyfile(
        my_agents="""
        from pytest_agentloop.agent.pseudo import ReferenceAgent

        class Replayer(ReferenceAgent):
            '''Stands in for a team's own in-process agent.'''
        """
    )
    pytester.syspathinsert()
    result = pytester.runpytest(str(tiny), "--agent-model=python:my_agents:Replayer", "--agent-json=r.json")
    result.assert_outcomes(passed=1)
    (record,) = json.loads((pytester.path / "r.json").read_text())["attempts"]
    assert record["model_info"]["agent"] == "python:my_agents:Replayer"


def test_a_python_agent_that_cannot_be_imported_is_a_usage_error(
    pytester: pytest.Pytester, tiny: Path
) -> None:
    result = pytester.runpytest(str(tiny), "--agent-model=python:no_such_module:Agent")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "cannot import 'no_such_module'" in result.stdout.str() + result.stderr.str()


def test_grade_hook_adds_a_house_rule(pytester: pytest.Pytester, tiny: Path) -> None:
    pytester.makeconftest(
        """
        import dataclasses
        from pytest_agentloop.records import Outcome

        def pytest_agentloop_grade(workspace, grade):
            if grade.outcome is Outcome.PASSED and '\"\"\"' not in (workspace.root / "calc.py").read_text():
                why = "house rule: calc.py needs a docstring"
                return dataclasses.replace(grade, outcome=Outcome.FAILED, reason=why)
        """
    )
    result = pytester.runpytest(str(tiny), "--agent-model=reference")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*failed: house rule: calc.py needs a docstring*"])


def test_attempt_finished_is_called_once_per_attempt_on_the_controller(
    pytester: pytest.Pytester, tiny: Path
) -> None:
    pytester.makeconftest(
        """
        import os

        def pytest_agentloop_attempt_finished(attempt, config):
            with open("finished.log", "a") as log:
                log.write(f"{os.getpid()} {hasattr(config, 'workerinput')} {attempt.outcome.value}\\n")
        """
    )
    result = pytester.runpytest_subprocess(str(tiny), "--agent-model=reference", "--repeat=3", "-n", "2")
    result.assert_outcomes(passed=3)
    lines = (pytester.path / "finished.log").read_text().splitlines()
    assert len(lines) == 3
    assert {line.split(" ", 1)[1] for line in lines} == {"False passed"}
    assert len({line.split()[0] for line in lines}) == 1  # one process: the controller
