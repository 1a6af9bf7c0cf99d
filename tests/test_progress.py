"""Progress while a run runs: turn lines, outcome letters, server and smoke-gate lines as they happen.

Real pytest subprocesses against the scripted model on loopback; the live line is read through a
real pseudo-terminal (pexpect), the plain lines from a pipe, the log lines with --log-cli-level.
"""

from __future__ import annotations

import re

import pytest

from pytest_agentloop.progress import LEGEND
from tests._runs import IGNORE, run, tiny_suite
from tests.support.scripted_server import ScriptedServer


@pytest.mark.parametrize(
    ("behaviour", "letter"),
    [
        ("solve", "."),
        ("quits_at_once", "F"),
        ("loop_one_call", "B"),
        ("never_calls", "N"),
        ("escalates", "H"),
        ("down", "E"),
    ],
)
def test_each_outcome_has_its_letter(pytester: pytest.Pytester, behaviour: str, letter: str) -> None:
    """The progress line tells a budget overrun from an infra error at a glance; the header says how."""
    tiny_suite(pytester.path)
    with ScriptedServer(behaviour, edits=[("calc.py", "def add(a, b):\n    return a + b\n")]) as server:
        result = run(
            pytester,
            "--agent-model=openai:scripted",
            f"--agent-host={server.url}",
            "--agent-no-smoke",
            "-p",
            "no:randomly",
        )
    out = result.stdout.str()
    assert LEGEND in out
    letters = re.findall(
        r"^(?:canaries/tiny2?/canary\.toml )?([.FBNHEs])\s*(?:\[\s*\d+%\])?$", out, re.MULTILINE
    )
    assert letters == [letter, letter], out


def test_a_plain_run_names_the_server_the_gate_and_each_attempts_first_turn(
    pytester: pytest.Pytester,
) -> None:
    """Not a terminal (a CI log): plain lines, in the order things happen, not only at the end."""
    tiny_suite(pytester.path)
    with ScriptedServer("loop_one_call") as server:
        result = run(
            pytester, "--agent-model=openai:scripted", f"--agent-host={server.url}", "-p", "no:randomly"
        )
    lines = result.stdout.lines
    at = {
        key: next(i for i, line in enumerate(lines) if key in line)
        for key in (
            "agentloop: reaching openai:scripted",
            f"agentloop: openai:scripted ready at {server.url}",
            "tiny[scripted-baseline-r1]: turn 1/10 · ",
            "agentloop: smoke gate openai:scripted (native): smoke tiny pass",
            "tiny2[scripted-baseline-r1]: turn 1/10 · ",
            "agentloop summary",
        )
    }
    assert list(at.values()) == sorted(at.values()), lines


def test_log_cli_shows_every_turn(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    with ScriptedServer("loop_one_call") as server:
        result = run(
            pytester,
            "--agent-model=openai:scripted",
            f"--agent-host={server.url}",
            "--agent-no-smoke",
            "--log-cli-level=INFO",
            "-k",
            "tiny2",
        )
    live = result.stdout.str().partition("= FAILURES =")[0]  # the failure text repeats the captured log
    turns = re.findall(
        r"INFO\s+agentloop:\S+ tiny2\[scripted-baseline-r1\]: turn (\d+)/10 · [\d,]+ tokens", live
    )
    assert turns == [str(n) for n in range(1, 11)]
    assert "agentloop: openai:scripted ready at" not in result.stdout.str()  # log_cli says it: not twice


def test_a_terminal_gets_one_live_status_rewritten_in_place(pytester: pytest.Pytester) -> None:
    """On a TTY the status follows the item in the progress line and is erased before its letter."""
    tiny_suite(pytester.path)
    with ScriptedServer("loop_one_call", latency_s=0.05) as server:
        args = " ".join(["canaries", "-p", "no:cacheprovider", *IGNORE, "--agent-model=openai:scripted"])
        child = pytester.spawn_pytest(
            f"{args} --agent-host={server.url} --agent-no-smoke -k tiny2", expect_timeout=120
        )
        child.expect(rb"\[turn 1/10 \S+ [\d,]+ tokens \S+ \d+s\]")
        child.expect(rb"\[turn 10/10 \S+ [\d,]+ tokens \S+ \d+s\]")
        erased = child.read().decode()
    assert erased.startswith("\b" * 10) and re.search(r"\x08 +\x08+.*B", erased, re.DOTALL), erased[:300]


def _xdist_run(pytester: pytest.Pytester, server: ScriptedServer, *args: str) -> pytest.RunResult:
    return run(
        pytester,
        "--agent-model=openai:scripted",
        f"--agent-host={server.url}",
        "--agent-no-smoke",
        "-n",
        "2",
        "-p",
        "no:randomly",
        *args,
    )


def test_under_xdist_the_controller_shows_each_workers_turns(pytester: pytest.Pytester) -> None:
    """Workers cannot write to the terminal: their turns reach the controller's output as plain lines,
    naming the worker, at most one per attempt per PLAIN_EVERY_S after its first turn, before its letter."""
    tiny_suite(pytester.path)
    with ScriptedServer("loop_one_call") as server:
        result = _xdist_run(pytester, server)
    out = result.stdout.str()
    lines = re.findall(
        r"^  \[(gw[01])\] (tiny2?)\[scripted-baseline-r1\]: turn (\d+)/10 · [\d,]+ tokens", out, re.M
    )
    assert sorted((name, turn) for _, name, turn in lines) == [("tiny", "1"), ("tiny2", "1")], out
    at = [i for i, line in enumerate(result.stdout.lines) if "turn 1/10" in line]
    letters = next(i for i, line in enumerate(result.stdout.lines) if line.startswith("BB"))
    assert max(at) < letters, out
    assert "agentloop: " not in "".join(line for line in result.stdout.lines if "turn 1/10" in line)


def test_under_xdist_log_cli_shows_every_turn_of_every_worker(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    with ScriptedServer("loop_one_call") as server:
        result = _xdist_run(pytester, server, "--log-cli-level=INFO")
    live = result.stdout.str().partition("= FAILURES =")[0]
    for name in ("tiny", "tiny2"):
        turns = re.findall(
            rf"INFO\s+agentloop:\S+ \[gw[01]\] {name}\[scripted-baseline-r1\]: turn (\d+)/10 · [\d,]+ tokens",
            live,
        )
        assert turns == [str(n) for n in range(1, 11)], live
