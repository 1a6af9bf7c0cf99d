"""Workspace: real git in tmp_path, a real bare origin, no mocks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pytest_agentloop.canary import Canary, load_canary
from pytest_agentloop.workspace import GitError, PathEscape, Workspace, git

CANARY_TOML = """
id = "demo"
tier = "smoke"
title = "Demo"
spec = "Fix it."
"""


def make_canary(tmp_path: Path) -> Canary:
    root = tmp_path / "demo"
    (root / "repo" / "pkg").mkdir(parents=True)
    (root / "repo" / "pkg" / "mod.py").write_text("X = 1\n")
    (root / "repo" / "README.md").write_text("demo\n")
    (root / "repo" / "__pycache__").mkdir()
    (root / "repo" / "__pycache__" / "junk.pyc").write_bytes(b"\0")
    (root / "hidden").mkdir()
    (root / "hidden" / "test_accept.py").write_text("def test_ok():\n    assert True\n")
    (root / "canary.toml").write_text(CANARY_TOML)
    return load_canary(root / "canary.toml")


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return Workspace.create(make_canary(tmp_path), parent=tmp_path)


def test_create_commits_baseline_and_pushes_it(workspace: Workspace) -> None:
    assert (workspace.root / "pkg" / "mod.py").read_text() == "X = 1\n"
    assert not (workspace.root / "__pycache__").exists()
    assert git("rev-parse", "HEAD", cwd=workspace.root).strip() == workspace.baseline
    assert git("symbolic-ref", "--short", "HEAD", cwd=workspace.root).strip() == "main"
    assert workspace.pushed_head() == workspace.baseline
    assert not workspace.pushed()
    assert git("config", "remote.origin.url", cwd=workspace.root).strip() == str(workspace.origin)
    author = git("log", "-1", "--format=%an <%ae>", cwd=workspace.root).strip()
    assert author == "agentloop <agentloop@localhost>"


def test_baseline_sha_depends_on_content_only(tmp_path: Path) -> None:
    canary = make_canary(tmp_path)
    first = Workspace.create(canary, parent=tmp_path)
    second = Workspace.create(canary, parent=tmp_path)
    assert first.baseline == second.baseline
    assert first.root != second.root


def test_works_without_any_git_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh CI machine: HOME with no .gitconfig, no identity in the environment."""
    monkeypatch.setenv("HOME", str(tmp_path / "empty-home"))
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    ws = Workspace.create(make_canary(tmp_path), parent=tmp_path)
    (ws.root / "new.txt").write_text("hi\n")
    assert ws.commit("add new") is not None
    # A commit typed by the agent itself in a shell uses the repo-local identity.
    (ws.root / "other.txt").write_text("x\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_CONFIG_GLOBAL"] = os.devnull
    subprocess.run(["git", "add", "-A"], cwd=ws.root, env=env, check=True)
    subprocess.run(["git", "commit", "-qm", "by hand"], cwd=ws.root, env=env, check=True)


def test_commit_push_diff_and_changed_files(workspace: Workspace) -> None:
    assert workspace.commit("nothing") is None
    (workspace.root / "pkg" / "mod.py").write_text("X = 2\n")
    (workspace.root / "new.txt").write_text("new\n")
    sha = workspace.commit("change")
    assert sha is not None and sha != workspace.baseline
    assert not workspace.pushed()
    assert workspace.diff_from_baseline() == ""
    assert workspace.push() is True
    assert workspace.push() is False
    assert workspace.pushed() and workspace.pushed_head() == sha
    assert sorted(workspace.changed_files()) == ["new.txt", "pkg/mod.py"]
    diff = workspace.diff_from_baseline()
    assert "-X = 1" in diff and "+X = 2" in diff and "+new" in diff


def test_commit_sees_a_same_size_edit_with_an_old_mtime(tmp_path: Path) -> None:
    """Git's stat cache alone misses this: `cp -p` of a same-size file, old mtime, same ctime second."""
    canary = make_canary(tmp_path)
    old = 978_307_200  # 2001: not "racily clean", so git would trust the stat data
    os.utime(canary.repo_dir / "pkg" / "mod.py", (old, old))
    workspace = Workspace.create(canary, parent=tmp_path)
    target = workspace.root / "pkg" / "mod.py"
    target.write_text("X = 7\n")
    os.utime(target, (old, old))
    assert workspace.commit("same size") is not None
    assert workspace.push()
    assert workspace.changed_files() == ["pkg/mod.py"]


def test_commit_records_deletions(workspace: Workspace) -> None:
    (workspace.root / "README.md").unlink()
    assert workspace.commit("delete") is not None
    workspace.push()
    assert workspace.changed_files() == ["README.md"]


def test_unpushed_diff_includes_uncommitted_and_untracked(workspace: Workspace) -> None:
    (workspace.root / "README.md").write_text("changed\n")
    (workspace.root / "untracked.py").write_text("Y = 1\n")
    diff = workspace.diff_from_baseline(pushed=False)
    assert "+changed" in diff and "+Y = 1" in diff
    # The agent's own index is untouched: the untracked file is still untracked.
    status = git("status", "--porcelain", cwd=workspace.root)
    assert "?? untracked.py" in status
    assert workspace.diff_from_baseline() == ""


def test_checkout_pushed_is_origin_not_the_work_tree(workspace: Workspace, tmp_path: Path) -> None:
    (workspace.root / "pkg" / "mod.py").write_text("X = 2\n")
    workspace.commit("pushed change")
    workspace.push()
    (workspace.root / "pkg" / "mod.py").write_text("X = 3  # not committed\n")
    (workspace.root / "stray.txt").write_text("never pushed\n")
    dest = workspace.checkout_pushed(tmp_path / "grading")
    assert (dest / "pkg" / "mod.py").read_text() == "X = 2\n"
    assert not (dest / "stray.txt").exists()


def test_push_that_is_not_a_fast_forward_is_refused(workspace: Workspace) -> None:
    (workspace.root / "a.txt").write_text("a\n")
    workspace.commit("a")
    workspace.push()
    git("reset", "-q", "--hard", workspace.baseline, cwd=workspace.root)
    (workspace.root / "b.txt").write_text("b\n")
    workspace.commit("b")
    with pytest.raises(GitError, match="git push failed"):
        workspace.push()


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/etc/passwd", "absolute paths"),
        ("../outside.txt", "outside the repository"),
        ("pkg/../../outside.txt", "outside the repository"),
        (".git/config", ".git is managed"),
        ("pkg/../.git/hooks/pre-commit", ".git is managed"),
        ("escape/secret", "symlink"),
    ],
)
def test_resolve_refuses_escapes(workspace: Workspace, tmp_path: Path, path: str, why: str) -> None:
    (tmp_path / "outside").mkdir()
    (workspace.root / "escape").symlink_to(tmp_path / "outside")
    with pytest.raises(PathEscape, match=why) as info:
        workspace.resolve(path)
    assert path in str(info.value)


def test_resolve_accepts_paths_inside(workspace: Workspace) -> None:
    (workspace.root / "inside").symlink_to(workspace.root / "pkg")
    assert workspace.resolve("pkg/mod.py") == workspace.root.resolve() / "pkg" / "mod.py"
    assert workspace.resolve("pkg/../README.md") == workspace.root.resolve() / "README.md"
    assert workspace.resolve("inside/mod.py") == workspace.root.resolve() / "pkg" / "mod.py"
    assert workspace.resolve("new/dir/file.txt").parent == workspace.root.resolve() / "new" / "dir"


def test_hidden_checks_are_not_in_the_work_tree(workspace: Workspace) -> None:
    assert not list(workspace.root.rglob("test_accept.py"))


def test_context_manager_removes_unless_kept(tmp_path: Path) -> None:
    canary = make_canary(tmp_path)
    with Workspace.create(canary, parent=tmp_path) as ws:
        root = ws.root
    assert not root.exists()
    with Workspace.create(canary, parent=tmp_path) as ws:
        ws.keep = True
    assert ws.root.exists()


def test_canary_workspace_fixture(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """The plugin offers the fixture to every test session: no conftest import needed."""
    canary = make_canary(tmp_path)
    pytester.makepyfile(
        f"""
        from pathlib import Path

        def test_uses_it(canary_workspace):
            ws = canary_workspace(Path({str(canary.root)!r}))
            assert (ws.root / "pkg" / "mod.py").exists()
            assert ws.pushed_head() == ws.baseline
        """
    )
    pytester.runpytest().assert_outcomes(passed=1)
