"""Choosing the sandbox engine: a run refuses where bubblewrap cannot run, `engine = "none"` is
printed as UNSANDBOXED everywhere, and podman runs a canary's image where podman can run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_agentloop.canary import load_canary
from pytest_agentloop.sandbox import SandboxPolicy, SandboxUnavailable, interpreter, require, run_sandboxed
from tests.support.tiny_canary import write_tiny_canary


@pytest.fixture
def tiny(pytester: pytest.Pytester) -> Path:
    return write_tiny_canary(pytester.path / "canaries" / "tiny")


def run_without_bwrap(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, fake: str | None) -> None:
    """PATH holds only a folder with (maybe) a fake `bwrap`: as on a machine without bubblewrap."""
    bin_dir = pytester.path / "bin"
    bin_dir.mkdir()
    if fake is not None:
        (bin_dir / "bwrap").write_text(f"#!/bin/sh\necho '{fake}' >&2\nexit 1\n")
        (bin_dir / "bwrap").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


@pytest.mark.usefixtures("tiny")
def test_no_bubblewrap_refuses_the_run_naming_the_fix(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_without_bwrap(pytester, monkeypatch, fake=None)
    result = pytester.runpytest_subprocess("--agent-model=reference")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: agentloop: sandbox: bubblewrap (bwrap) is not installed; install bubblewrap "
         '(`apt-get install bubblewrap`) or set `[sandbox] engine = "none"` (unsandboxed).']
    )  # fmt: skip
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


@pytest.mark.usefixtures("tiny")
def test_a_bubblewrap_that_cannot_run_refuses_with_its_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_without_bwrap(pytester, monkeypatch, fake="bwrap: No permissions to create a new namespace")
    result = pytester.runpytest_subprocess("--agent-model=reference")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: agentloop: sandbox: bubblewrap cannot run here (bwrap: No permissions to create a new "
         "namespace); install bubblewrap*"]
    )  # fmt: skip


@pytest.mark.usefixtures("tiny")
def test_engine_none_is_unsandboxed_in_the_summary_the_html_every_card_and_the_results(
    pytester: pytest.Pytester,
) -> None:
    pytester.makefile(".toml", agentloop='[sandbox]\nengine = "none"\n')
    result = pytester.runpytest(
        "--agent-model=reference", "--agent-model=null", "--agent-json=r.json", "--agent-cards=cards",
        "--html=report.html", "-p", "no:randomly",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(['agentloop: UNSANDBOXED run: [[]sandbox[]] engine = "none"*'])
    assert "UNSANDBOXED run" in (pytester.path / "report.html").read_text()
    cards = sorted((pytester.path / "cards").glob("*.md"))
    assert len(cards) == 2
    assert all("UNSANDBOXED run" in card.read_text().splitlines()[2] for card in cards)
    assert json.loads((pytester.path / "r.json").read_text())["run"]["sandbox"] == "none"


@pytest.mark.usefixtures("tiny")
def test_a_sandboxed_run_says_nothing_about_it(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--agent-model=reference", "--agent-json=r.json", "--agent-cards=cards")
    result.assert_outcomes(passed=1)
    assert "UNSANDBOXED" not in result.stdout.str()
    assert "UNSANDBOXED" not in "".join(p.read_text() for p in (pytester.path / "cards").glob("*.md"))
    assert json.loads((pytester.path / "r.json").read_text())["run"]["sandbox"] == "bwrap"


def test_a_canary_declares_network_and_image(tmp_path: Path) -> None:
    toml = write_tiny_canary(tmp_path / "c")
    toml.write_text(toml.read_text() + '\n[sandbox]\nnetwork = true\nimage = "localhost/py:3.11"\n')
    limits = SandboxPolicy().for_canary(load_canary(toml))
    assert limits.network and limits.image == "localhost/py:3.11"
    assert SandboxPolicy(image="default").for_canary(
        load_canary(write_tiny_canary(tmp_path / "d"))
    ).image == ("default")


def test_podman_without_an_image_says_where_to_name_one() -> None:
    with pytest.raises(SandboxUnavailable, match=r"needs an image; set `image` in the canary's \[sandbox\]"):
        require(SandboxPolicy(engine="podman"))


def test_podman_runs_the_command_in_the_image(tmp_path: Path) -> None:
    """The host's own root as the image's rootfs (podman --rootfs): no registry needed."""
    limits = SandboxPolicy(engine="podman", image="/", timeout_s=120)
    try:
        require(limits)
    except SandboxUnavailable as exc:
        pytest.skip(f"podman cannot run containers on this machine: {exc}")
    assert interpreter(limits) == "python"
    (tmp_path / "probe.py").write_text("import os, socket\nprint(os.getcwd(), socket.if_nameindex())\n")
    result = run_sandboxed(["python3", "probe.py"], tmp_path, limits)
    assert result.exit_code == 0, result.output
    assert str(tmp_path) in result.output and "eth0" not in result.output
