"""The external-agent contract end to end: real subprocesses in the sandbox, real git, real grading.

The agents are the scripts shipped in examples/ (a replay agent and a hanging one), run through
pytester on copies of the built-in smoke canaries; the model, where one is asked, is the real
embedded SmolLM2.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.agent.external import read_transcript
from tests.support.scripted_server import ScriptedServer

ROOT = Path(__file__).resolve().parents[1]
REPLAY = "python $AGENTLOOP_ROOT/examples/external_agent.py --solutions $AGENTLOOP_ROOT/canaries"
AGENTS = f"""
[agents.replay]
command = "{REPLAY}"

[agents.quiet]
command = "{REPLAY} --no-transcript"

[agents.asker]
command = "{REPLAY}"
model = "embedded:smollm2-135m"

[agents.idle]
command = "echo looked around"

[agents.hang]
command = "python $AGENTLOOP_ROOT/examples/hanging_agent.py"

[agents.missing]
command = "no-such-agent --task greeting"

[agents.segv]
command = 'echo "loading weights"; python -c "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"'
model = "openai:scripted"
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> Path:
    """A project with the smoke canaries, the example agents and their [agents.*] tables."""
    shutil.copytree(ROOT / "canaries" / "smoke", pytester.path / "canaries" / "smoke")
    (pytester.path / "examples").mkdir()
    for name in ("external_agent.py", "hanging_agent.py"):
        shutil.copy(ROOT / "examples" / name, pytester.path / "examples" / name)
    (pytester.path / "agentloop.toml").write_text(AGENTS, encoding="utf-8")
    return pytester.path


def run(pytester: pytest.Pytester, agent: str, *args: str) -> pytest.RunResult:
    """Run the agent on the canaries given by their canary.toml (nothing else is collected)."""
    tomls = sorted(str(path) for path in pytester.path.glob("canaries/smoke/*/canary.toml"))
    return pytester.runpytest(f"--agent-model=external:{agent}", "--agent-json=r.json", *args, *tomls)


def attempts(path: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))["attempts"]
    return sorted(records, key=lambda record: record["canary"])


def test_replay_agent_solves_the_smoke_canaries_and_its_transcript_is_read(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = run(pytester, "replay")
    result.assert_outcomes(passed=2)
    for record in attempts(project / "r.json"):
        assert record["outcome"] == "passed" and record["pushed"]
        # Three turns (write, test, commit+push); no model was asked, so zero tokens, truly.
        assert record["turns"] == 3
        assert record["tool_calls"] == 4  # one write_file, run_tests, commit, push
        assert (record["prompt_tokens"], record["completion_tokens"]) == (0, 0)
        assert record["malformed_tool_calls"] is None  # only the agent's own parser saw the replies
        assert record["model_info"]["agent"] == "external"


def test_without_a_transcript_counters_are_null_not_zero(pytester: pytest.Pytester, project: Path) -> None:
    result = run(pytester, "quiet", "-k", "greeting")
    result.assert_outcomes(passed=1)
    (record,) = attempts(project / "r.json")
    assert record["outcome"] == "passed"
    nulls = ("turns", "tool_calls", "prompt_tokens", "completion_tokens", "malformed_tool_calls")
    assert {key: record[key] for key in nulls} == dict.fromkeys(nulls)


def test_an_agent_that_does_not_push_fails_like_any_other(pytester: pytest.Pytester, project: Path) -> None:
    result = run(pytester, "idle", "-k", "greeting")
    result.assert_outcomes(failed=1)
    (record,) = attempts(project / "r.json")
    assert record["outcome"] == "failed" and not record["pushed"]
    # Why it stopped stays in the reason: its exit status and its last words on stdout.
    stop = "declared done without pushing; the agent: exit status 0: looked around"
    assert record["reason"].startswith(stop)


def test_a_hanging_agent_is_killed_at_the_time_budget(pytester: pytest.Pytester, project: Path) -> None:
    toml = project / "canaries" / "smoke" / "fix-greeting-typo" / "canary.toml"
    toml.write_text(toml.read_text().replace("seconds = 180", "seconds = 2"), encoding="utf-8")
    result = run(pytester, "hang", "-k", "greeting")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*budget_exceeded (time): killed at the canary's time budget of 2 s*"])
    (record,) = attempts(project / "r.json")
    assert (record["outcome"], record["limit"]) == ("budget_exceeded", "time")


def test_the_agent_talks_to_the_configured_model(pytester: pytest.Pytester, project: Path) -> None:
    """The replay agent asks the real embedded model once, through the metering proxy: the proxy's
    one turn and the model's own token counts reach the record; it declared no tools, so its
    tool-call counters stay null; its model is fingerprinted like a built-in agent's."""
    result = run(pytester, "asker", "-k", "greeting")
    result.assert_outcomes(passed=1)
    (record,) = attempts(project / "r.json")
    assert record["turns"] == 1
    assert record["prompt_tokens"] > 0 and record["completion_tokens"] > 0
    assert record["tool_calls"] is None and record["malformed_tool_calls"] is None
    assert record["model_info"]["model_url"].startswith("http://127.0.0.1:")
    assert record["model_info"]["runtime"] and record["model_info"]["agent"] == "external"


def test_an_unknown_external_agent_is_a_one_line_usage_error(
    pytester: pytest.Pytester, project: Path
) -> None:
    result = pytester.runpytest("--agent-model=external:nosuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*external:nosuch: no [[]agents.nosuch[]] table*defined: asker, hang, idle*"]
    )
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_one_unreadable_transcript_line_costs_that_line_only(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    good = '{"content": "ok", "usage": {"prompt_tokens": 3, "completion_tokens": 1}}'
    path.write_text(f"{good}\nnot json\n{good}\n")
    lines, problem = read_transcript(path)
    assert lines is not None and len(lines) == 2
    assert problem.startswith("transcript t.jsonl: 1 unreadable line(s) skipped (line 2:")


def test_an_agent_that_cannot_start_is_an_infra_error_not_the_models_failure(
    pytester: pytest.Pytester, project: Path
) -> None:
    """/bin/sh's documented status for a command it cannot find is 127 (POSIX, "Command Search and
    Execution"); its message goes to stderr, which the reason quotes."""
    run(pytester, "missing", "-k", "greeting", "--agent-keep-workspaces")
    (record,) = attempts(project / "r.json")
    assert record["outcome"] == "infra_error"
    assert record["reason"].startswith("the agent could not run: exit status 127 (command not found):")
    assert "no-such-agent: not found" in record["reason"]
    kept = Path(record["reason"].rsplit("workspace kept at ", 1)[1].rstrip(")"))
    assert "no-such-agent: not found" in (kept.parent / "agent" / "stderr.log").read_text()


def test_a_crash_before_the_first_model_call_keeps_its_status_and_output(
    pytester: pytest.Pytester, project: Path
) -> None:
    """A segfault (the shell reports 128 + 11) before any request reached the proxy: infra_error,
    with the signal named in the reason and the last output lines in the transcript."""
    with ScriptedServer("solve") as server:
        run(pytester, "segv", "-k", "greeting", f"--agent-host={server.url}")
        assert server.requests == []
    (record,) = attempts(project / "r.json")
    assert record["outcome"] == "infra_error"
    assert "before its first model call" in record["reason"] and "SIGSEGV" in record["reason"]
    lines = (project / "r.transcripts.jsonl").read_text(encoding="utf-8").splitlines()
    stop = json.loads(lines[0])["transcript"]["agent_stop"]
    assert "SIGSEGV" in stop and "loading weights" in stop


def test_a_hosts_table_line_for_its_model_serves_an_external_agent(
    pytester: pytest.Pytester, project: Path
) -> None:
    """[hosts] maps model specs to URLs; `external:talker` has no line of its own, its model has.
    The replay agent asks the model once through the proxy (scripted: known usage), then replays."""
    with ScriptedServer("never_calls") as server:
        config = project / "agentloop.toml"
        table = f'[agents.talker]\ncommand = "{REPLAY}"\nmodel = "openai:scripted"\n'
        config.write_text(f'{table}\n[hosts]\n"openai:scripted" = "{server.url}"\n', encoding="utf-8")
        run(pytester, "talker", "-k", "greeting").assert_outcomes(passed=1)
        assert len(server.requests) == 1
    (record,) = attempts(project / "r.json")
    assert (record["turns"], record["tool_calls"]) == (1, None)  # it declared no tools
    assert record["prompt_tokens"] > 0 and record["model_info"]["base_url"] == server.url
