"""The harness's own git against repository content that names programs to run.

Under bubblewrap the sandboxed code cannot write `.git` or origin, but an external agent can (it
commits and pushes itself), and so can anything in an `engine = "none"` run. So each attack is
planted directly on disk, as such code would leave it: filters, diff drivers, textconv, fsmonitor,
hooks (work tree and origin), pack programs, ext:: and ssh transports, includes, a moved work
tree, `commondir`, worktree config, attribute files, a swapped `.git`. Then the harness does
everything it does with git in an attempt (commit, push, diffs, changed files, the grading clone)
and no planted program may have run: each would create a marker file (and dump the environment,
API key included, beside it). `test_the_plants_are_real` shows the same plants firing under a
plain `git`, so the markers can appear.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_agentloop.canary import load_canary
from pytest_agentloop.workspace import GitError, Workspace, _git_env
from tests.support.tiny_canary import write_tiny_canary

SECRET = "sk-git-hostile-secret"


@dataclass
class Plot:
    ws: Workspace
    outside: Path

    @property
    def work_git(self) -> Path:
        return self.ws.root / ".git"

    def cmd(self, name: str) -> str:
        marker = self.outside / f"escape-{name}"
        return f"touch {marker}; env > {marker}.env"

    def script(self, name: str, tail: str = "") -> Path:
        path = self.outside / f"{name}.sh"
        path.write_text(f"#!/bin/sh\n{self.cmd(name)}\n{tail}\n")
        path.chmod(0o755)
        return path

    def config(self, git_dir: Path, *pairs: tuple[str, str]) -> None:
        """Write keys into a config file directly, as code with write access would (no git runs)."""
        for key, value in pairs:
            subprocess.run(
                ["git", "config", "-f", str(git_dir / "config"), key, value],
                check=True,
                env={"PATH": os.environ["PATH"], "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(self.outside)},
            )

    def attributes(self, text: str, where: Path | None = None) -> None:
        (where or self.ws.root / ".gitattributes").parent.mkdir(parents=True, exist_ok=True)
        (where or self.ws.root / ".gitattributes").write_text(text)

    def hooks(self, folder: Path, names: tuple[str, ...]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            hook = folder / name
            hook.write_text(f"#!/bin/sh\n{self.cmd('hook-' + name)}\n")
            hook.chmod(0o755)

    def markers(self) -> list[str]:
        return sorted(p.name for p in self.outside.iterdir() if p.name.startswith("escape-"))


def filter_clean(p: Plot) -> None:
    p.attributes("* filter=pwn\n")
    p.config(p.work_git, ("filter.pwn.clean", p.cmd("clean")), ("filter.pwn.required", "true"))


def filter_process(p: Plot) -> None:
    p.attributes("* filter=pwn\n")
    p.config(p.work_git, ("filter.pwn.process", p.cmd("process")))


def filter_smudge_origin(p: Plot) -> None:
    p.attributes("* filter=pwn\n")
    p.config(p.ws.origin, ("filter.pwn.smudge", p.cmd("smudge")))
    p.config(p.work_git, ("filter.pwn.smudge", p.cmd("smudge-work")))


def diff_external(p: Plot) -> None:
    p.config(p.work_git, ("diff.external", str(p.script("external"))))
    p.config(p.ws.origin, ("diff.external", str(p.script("external-origin"))))


def diff_textconv(p: Plot) -> None:
    p.attributes("* diff=pwn\n")
    p.config(p.work_git, ("diff.pwn.textconv", str(p.script("textconv"))))
    p.config(p.ws.origin, ("diff.pwn.textconv", str(p.script("textconv-origin"))))


def diff_command(p: Plot) -> None:
    p.attributes("* diff=pwn\n")
    p.config(p.work_git, ("diff.pwn.command", str(p.script("diffcmd"))))
    p.config(p.ws.origin, ("diff.pwn.command", str(p.script("diffcmd-origin"))))


def fsmonitor(p: Plot) -> None:
    p.config(p.work_git, ("core.fsmonitor", str(p.script("fsmonitor"))))
    p.config(p.ws.origin, ("core.fsmonitor", str(p.script("fsmonitor-origin"))))


def hooks_path(p: Plot) -> None:
    folder = p.outside / "hooks"
    p.hooks(folder, ("pre-commit", "post-commit", "pre-push", "reference-transaction"))
    p.config(p.work_git, ("core.hooksPath", str(folder)))
    p.config(p.ws.origin, ("core.hooksPath", str(folder)))


def default_hooks(p: Plot) -> None:
    names = ("pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "pre-push", "post-index-change")
    p.hooks(p.work_git / "hooks", (*names, "reference-transaction"))
    p.config(p.work_git, ("core.hooksPath", str(p.work_git / "hooks")))  # undo the harness's /dev/null


def origin_hooks(p: Plot) -> None:
    names = ("pre-receive", "update", "post-receive", "post-update", "reference-transaction", "proc-receive")
    p.hooks(p.ws.origin / "hooks", names)
    p.config(
        p.ws.origin, ("receive.procReceiveRefs", "refs/heads"), ("core.hooksPath", str(p.ws.origin / "hooks"))
    )


def receive_pack(p: Plot) -> None:
    program = p.script("receivepack", 'exec git-receive-pack "$@"')
    p.config(p.work_git, ("remote.origin.receivepack", str(program)))
    p.config(
        p.work_git, ("remote.origin.uploadpack", str(p.script("uploadpack", 'exec git-upload-pack "$@"')))
    )


def remote_url_ext(p: Plot) -> None:
    p.config(p.work_git, ("remote.origin.url", f"ext::sh -c {p.cmd('ext').replace(' ', '% ')}"))


def insteadof_ext(p: Plot) -> None:
    p.config(p.work_git, (f"url.ext::sh -c {p.script('insteadof')!s}% %S .insteadOf", str(p.ws.origin)))


def ssh_command(p: Plot) -> None:
    p.config(
        p.work_git,
        ("core.sshCommand", str(p.script("ssh"))),
        ("url.ssh://localhost/x.insteadOf", str(p.ws.origin)),
        ("remote.origin.url", "ssh://localhost/x"),
    )


def include_path(p: Plot) -> None:
    evil = p.outside / "evil.config"
    p.attributes("* filter=pwn diff=pwn\n")
    evil.write_text(
        f'[filter "pwn"]\n\tclean = {p.cmd("include")}\n[diff]\n\texternal = {p.script("inc-ext")}\n'
    )
    p.config(p.work_git, ("include.path", str(evil)))
    p.config(p.ws.origin, ("include.path", str(evil)))


def core_worktree(p: Plot) -> None:
    elsewhere = p.outside / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "stolen.txt").write_text(SECRET)
    p.config(p.work_git, ("core.worktree", str(elsewhere)))


def commondir(p: Plot) -> None:
    evil = p.outside / "evilgit"
    shutil.copytree(p.work_git, evil)
    p.config(evil, ("core.fsmonitor", str(p.script("commondir"))))
    (p.work_git / "commondir").write_text(str(evil) + "\n")


def worktree_config(p: Plot) -> None:
    p.attributes("* filter=pwn\n")
    p.config(p.work_git, ("extensions.worktreeConfig", "true"), ("core.repositoryformatversion", "1"))
    (p.work_git / "config.worktree").write_text(f'[filter "pwn"]\n\tclean = {p.cmd("wtconfig")}\n')


def info_attributes(p: Plot) -> None:
    p.attributes("* filter=pwn\n", p.work_git / "info" / "attributes")
    p.config(p.work_git, ("filter.pwn.clean", p.cmd("info-attr")))


def pager_and_credentials(p: Plot) -> None:
    p.config(
        p.work_git,
        ("core.pager", p.cmd("pager")),
        ("pager.diff", p.cmd("pager-diff")),
        ("core.askPass", str(p.script("askpass"))),
        ("credential.helper", f"!{p.cmd('credential')}"),
        ("core.editor", p.cmd("editor")),
        ("gpg.program", str(p.script("gpg"))),
        ("commit.gpgSign", "true"),
    )


def pack_objects_hook(p: Plot) -> None:
    p.config(p.ws.origin, ("uploadpack.packObjectsHook", str(p.script("packhook", 'exec "$@"'))))


def alternate_refs(p: Plot) -> None:
    (p.ws.origin / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (p.ws.origin / "objects" / "info" / "alternates").write_text(str(p.work_git / "objects") + "\n")
    p.config(p.ws.origin, ("core.alternateRefsCommand", str(p.script("altrefs"))))


def auto_gc(p: Plot) -> None:
    p.hooks(p.work_git / "hooks", ("pre-auto-gc",))
    p.config(p.work_git, ("gc.auto", "1"), ("gc.autoDetach", "false"), ("maintenance.auto", "true"))


def gitfile_swap(p: Plot) -> None:
    evil = p.outside / "evilgit"
    shutil.copytree(p.work_git, evil)
    p.config(evil, ("core.fsmonitor", str(p.script("gitfile"))))
    shutil.rmtree(p.work_git)
    p.work_git.write_text(f"gitdir: {evil}\n")


def config_symlink(p: Plot) -> None:
    evil = p.outside / "linked.config"
    evil.write_text(f"[core]\n\tfsmonitor = {p.script('symlinked')}\n")
    (p.work_git / "config").unlink()
    (p.work_git / "config").symlink_to(evil)


def submodule_update(p: Plot) -> None:
    (p.ws.root / ".gitmodules").write_text(
        f'[submodule "x"]\n\tpath = x\n\turl = {p.ws.origin}\n\tupdate = !{p.cmd("submodule")}\n'
    )


PLANTS: dict[str, Callable[[Plot], None]] = {
    "filter-clean": filter_clean,
    "filter-process": filter_process,
    "filter-smudge": filter_smudge_origin,
    "diff-external": diff_external,
    "diff-textconv": diff_textconv,
    "diff-command": diff_command,
    "core-fsmonitor": fsmonitor,
    "core-hookspath": hooks_path,
    "work-tree-hooks": default_hooks,
    "origin-hooks": origin_hooks,
    "remote-receivepack": receive_pack,
    "remote-url-ext": remote_url_ext,
    "insteadof-ext": insteadof_ext,
    "core-sshcommand": ssh_command,
    "include-path": include_path,
    "core-worktree": core_worktree,
    "commondir": commondir,
    "worktree-config": worktree_config,
    "info-attributes": info_attributes,
    "pager-askpass-credential-gpg": pager_and_credentials,
    "uploadpack-packobjectshook": pack_objects_hook,
    "alternate-refs-command": alternate_refs,
    "auto-gc-hook": auto_gc,
    "gitfile-swap": gitfile_swap,
    "config-symlink": config_symlink,
    "submodule-update": submodule_update,
}


@pytest.fixture
def plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Plot]:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    canary = load_canary(write_tiny_canary(tmp_path / "canary"))
    outside = tmp_path / "outside"
    outside.mkdir()
    with Workspace.create(canary, parent=tmp_path) as workspace:
        yield Plot(workspace, outside)


def harness_git(p: Plot) -> list[str]:
    """Everything the harness does with git in an attempt; a refusal (GitError) is fine."""
    (p.ws.root / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    refused = []
    steps = (
        lambda: p.ws.commit("work"),
        p.ws.push,
        lambda: p.ws.diff_from_baseline(pushed=False),
        p.ws.diff_from_baseline,
        p.ws.changed_files,
        p.ws.pushed,
        lambda: p.ws.checkout_pushed(p.outside / "graded"),
    )
    for step in steps:
        try:
            step()
        except GitError as exc:
            refused.append(str(exc))
    return refused


@pytest.mark.parametrize("plant", list(PLANTS), ids=list(PLANTS))
def test_harness_git_runs_no_planted_program(plot: Plot, plant: str) -> None:
    PLANTS[plant](plot)
    harness_git(plot)
    assert plot.markers() == []
    graded = plot.outside / "graded"
    assert not (graded / "stolen.txt").exists()


def test_harness_git_still_works_after_the_plants(plot: Plot) -> None:
    """Putting the config back is not refusing: the attempt's work still reaches origin."""
    filter_clean(plot)
    diff_external(plot)
    assert harness_git(plot) == []
    assert "calc.py" in plot.ws.changed_files()
    assert "return a + b" in (plot.outside / "graded" / "calc.py").read_text()


def test_a_swapped_dot_git_is_refused_not_followed(plot: Plot) -> None:
    gitfile_swap(plot)
    refused = harness_git(plot)
    assert any("no longer the harness's repository" in why for why in refused)


def test_git_gets_no_secret_from_the_harness_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    env = _git_env()
    assert SECRET not in env.values() and "HTTPS_PROXY" not in env
    assert env["GIT_CONFIG_NOSYSTEM"] == "1" and env["GIT_CONFIG_GLOBAL"] == os.devnull


VANILLA = {
    "filter-clean": ["add", "-A"],
    "diff-external": ["diff", "HEAD"],
    "core-fsmonitor": ["status"],
    "work-tree-hooks": ["commit", "-q", "--allow-empty", "-m", "x"],
    "origin-hooks": ["push", "-q", "origin", "HEAD:refs/heads/other"],
    "remote-receivepack": ["push", "-q", "origin", "HEAD:refs/heads/other"],
}


@pytest.mark.parametrize("plant", list(VANILLA), ids=list(VANILLA))
def test_the_plants_are_real(plot: Plot, plant: str) -> None:
    """Plain git (the repo's config honoured) runs the planted program: the markers can appear."""
    PLANTS[plant](plot)
    (plot.ws.root / "calc.py").write_text("changed\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(plot.outside), "GIT_CONFIG_NOSYSTEM": "1"}
    env |= {
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@b",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@b",
    }
    with contextlib.suppress(subprocess.SubprocessError):
        subprocess.run(["git", *VANILLA[plant]], cwd=plot.ws.root, env=env, capture_output=True, timeout=60)
    assert plot.markers() != []
