import ast
import subprocess
import sys
from pathlib import Path

import pytest
from wordfreq import cli, core

TEXT = "A bee, a beetle and a bear. Bears! Beetles beetle beetle."


def test_core_filters_by_length():
    assert core.top_words(TEXT, limit=3, min_length=5) == [("beetle", 3), ("bears", 1), ("beetles", 1)]


def test_core_default_keeps_every_word():
    assert core.top_words(TEXT, limit=2) == [("a", 3), ("beetle", 3)]


def test_cli_end_to_end(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    root = Path(cli.__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, "-m", "wordfreq", str(path), "--min-length", "4", "--limit", "2"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "beetle 3\nbear 1\n"


def test_cli_rejects_zero(tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    with pytest.raises(SystemExit) as info:
        cli.main([str(path), "--min-length", "0"])
    assert info.value.code == 2
    assert "--min-length must be at least 1" in capsys.readouterr().err


def test_visible_test_added():
    source = (Path(cli.__file__).resolve().parents[1] / "tests" / "test_cli.py").read_text()
    calls = [
        n
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "main"
    ]
    assert any("--min-length" in ast.unparse(call) for call in calls)
