"""Store, gates and resume set in agentloop.toml act as their options do; the command line wins."""

from __future__ import annotations

import sqlite3

import pytest

from tests._runs import run, tiny_suite


def write_toml(pytester: pytest.Pytester, *lines: str) -> None:
    (pytester.path / "agentloop.toml").write_text("\n".join(['models = ["null"]', *lines]) + "\n")


def test_store_and_gates_from_toml(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    write_toml(pytester, 'store = "sqlite:///history.db"', 'gates = ["lite:pass_rate>=0.5"]')
    result = run(pytester)
    result.stdout.fnmatch_lines(["*UNMET  lite:pass_rate>=0.5*"])
    with sqlite3.connect(pytester.path / "history.db") as db:
        assert db.execute("SELECT COUNT(*) FROM agentloop_attempts").fetchone()[0] == 2


def test_the_command_line_wins_over_toml_store_and_gates(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    write_toml(pytester, 'store = "sqlite:///toml.db"', 'gates = ["lite:pass_rate>=0.5"]')
    result = run(pytester, "--agent-store=sqlite:///cli.db", "--agent-gate=lite:pass_rate>=0.0")
    result.stdout.fnmatch_lines(["*met  lite:pass_rate>=0.0*"])
    assert "UNMET" not in result.stdout.str()
    assert (pytester.path / "cli.db").is_file() and not (pytester.path / "toml.db").exists()


def test_resume_from_toml_skips_what_the_store_holds(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    write_toml(pytester, 'store = "sqlite:///history.db"')
    run(pytester)
    with sqlite3.connect(pytester.path / "history.db") as db:  # as if the run had been killed
        db.execute("UPDATE agentloop_runs SET finished = NULL")
    write_toml(pytester, 'store = "sqlite:///history.db"', "resume = true")
    result = run(pytester, "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*agentloop store: run * (resumed), 2 attempts in*"])
    with sqlite3.connect(pytester.path / "history.db") as db:
        assert db.execute("SELECT COUNT(*) FROM agentloop_attempts").fetchone()[0] == 2
    again = run(pytester)  # the run finished: nothing to resume, so a new run, which says so
    again.assert_outcomes(failed=2)
    again.stdout.fnmatch_lines(["agentloop: no unfinished run with these settings in *; starting run *"])
    assert "(resumed)" not in again.stdout.str()


def test_a_bad_gate_in_toml_is_one_line(pytester: pytest.Pytester) -> None:
    tiny_suite(pytester.path)
    write_toml(pytester, 'gates = ["lite:pass_rate>>0.5"]')
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1 and "lite:pass_rate>>0.5" in errors[0]
