"""The throwaway git repository an attempt works in, and the bare `origin` it pushes to.

Grading reads what reached `origin main`, never the agent's work tree, so a model that edits files
but never pushes is seen as such. Git runs as plain subprocesses (one `git` per step, no library
in between) because provisioning is on every attempt's path: a workspace costs a few `git` calls.
Every call pins its identity and ignores user/system config, so a fresh CI machine with no global
git identity behaves the same as a laptop; hooks and fsmonitor are switched off because the work
tree (and, with a shell tool, `.git`) is written by untrusted code while the harness's git runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from types import TracebackType

from pytest_agentloop.canary import Canary

IDENTITY = ("agentloop", "agentloop@localhost")
BRANCH = "main"
# A fixed baseline date makes the baseline sha depend on the canary's content only.
_BASELINE_DATE = "2000-01-01T00:00:00+0000"
_SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "safe.directory=*",
    "commit.gpgsign=false",
)
_IGNORED = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache")


class PathEscape(ValueError):
    """A path the agent may not touch; the message is shown to the model."""


class GitError(RuntimeError):
    """A git command failed; the message is git's own last line, fit to show the model."""


def _git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    name, email = IDENTITY
    env.update(
        GIT_AUTHOR_NAME=name,
        GIT_AUTHOR_EMAIL=email,
        GIT_COMMITTER_NAME=name,
        GIT_COMMITTER_EMAIL=email,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    env.update(extra or {})
    return env


def git(*args: str, cwd: Path, env: Mapping[str, str] | None = None, check: bool = True) -> str:
    """Run one git command with the harness's pinned settings; stdout, or GitError when it fails."""
    config = [arg for item in _SAFE_CONFIG for arg in ("-c", item)]
    if not cwd.is_dir():
        raise GitError(f"git {args[0]} failed: {cwd} does not exist (was the workspace removed?)")
    proc = subprocess.run(
        ["git", *config, *args], cwd=cwd, env=_git_env(env), capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or [f"exit status {proc.returncode}"]
        raise GitError(f"git {args[0]} failed: {lines[-1]}")
    return proc.stdout


class Workspace:
    """One attempt's work tree (`root`, on branch main) plus its bare `origin`, baseline pushed."""

    def __init__(self, base: Path, baseline: str, *, keep: bool = False) -> None:
        self.base = base
        self.root = base / "work"
        self.origin = base / "origin.git"
        self.baseline = baseline
        self.keep = keep

    @classmethod
    def create(cls, canary: Canary, parent: Path | None = None) -> Workspace:
        """Copy the canary's repo into a fresh temp dir, commit it as the baseline, push to origin."""
        base = Path(tempfile.mkdtemp(prefix=f"agentloop-{canary.id}-", dir=parent))
        try:
            return cls._provision(canary, base)
        except BaseException:
            shutil.rmtree(base, ignore_errors=True)
            raise

    @classmethod
    def _provision(cls, canary: Canary, base: Path) -> Workspace:
        root, origin = base / "work", base / "origin.git"
        shutil.copytree(canary.repo_dir, root, ignore=_IGNORED, symlinks=True)
        git("init", "-q", "-b", BRANCH, cwd=root)
        git("add", "-A", cwd=root)
        fixed = {"GIT_AUTHOR_DATE": _BASELINE_DATE, "GIT_COMMITTER_DATE": _BASELINE_DATE}
        git("commit", "-q", "--allow-empty", "-m", f"baseline: {canary.id}", cwd=root, env=fixed)
        git("clone", "-q", "--bare", str(root), str(origin), cwd=base)
        name, email = IDENTITY
        with (root / ".git" / "config").open("a", encoding="utf-8") as config:
            # Repo-local identity so a `git commit` typed by the agent works on a machine with none.
            config.write(
                f'[user]\n\tname = {name}\n\temail = {email}\n[remote "origin"]\n\turl = {origin}\n'
                f"\tfetch = +refs/heads/*:refs/remotes/origin/*\n"
                f'[branch "{BRANCH}"]\n\tremote = origin\n\tmerge = refs/heads/{BRANCH}\n'
            )
        # The branch ref of a fresh repo is a loose file: reading it saves one git process.
        return cls(base, (root / ".git" / "refs" / "heads" / BRANCH).read_text(encoding="ascii").strip())

    def resolve(self, path: str) -> Path:
        """The absolute path for an agent-supplied relative path, or PathEscape saying why not."""
        if PurePosixPath(path).is_absolute():
            raise PathEscape(
                f"refused '{path}': absolute paths are not allowed; use a path relative to the repo root"
            )
        root = self.root.resolve()
        candidate = root / path
        try:
            relative = candidate.resolve().relative_to(root)
        except ValueError:
            why = "a symlink on it leads" if ".." not in PurePosixPath(path).parts else "it points"
            raise PathEscape(f"refused '{path}': {why} outside the repository") from None
        if ".git" in relative.parts or ".git" in PurePosixPath(path).parts:
            raise PathEscape(
                f"refused '{path}': .git is managed by the harness; use the commit and push tools"
            )
        return root / relative

    def commit(self, message: str) -> str | None:
        """Stage everything and commit; the new sha, or None when there was nothing to commit."""
        # Rebuild the index from the work tree: git's stat cache misses a same-size edit made in the
        # index's second with an older mtime (`cp -p`, shutil.copy2), and that edit must not be lost.
        (self.root / ".git" / "index").unlink(missing_ok=True)
        git("add", "-A", cwd=self.root)
        if not git("status", "--porcelain", "--untracked-files=no", cwd=self.root).strip():
            return None
        git("commit", "-q", "-m", message or "(no message)", cwd=self.root)
        return git("rev-parse", "HEAD", cwd=self.root).strip()

    def push(self) -> bool:
        """Push HEAD to origin main (fast-forward only); True when origin moved."""
        before = self.pushed_head()
        git("push", "-q", "origin", f"HEAD:refs/heads/{BRANCH}", cwd=self.root)
        return self.pushed_head() != before

    def pushed_head(self) -> str:
        return git("rev-parse", f"refs/heads/{BRANCH}", cwd=self.origin).strip()

    def pushed(self) -> bool:
        return self.pushed_head() != self.baseline

    def diff_from_baseline(self, *, pushed: bool = True) -> str:
        """Unified diff from the baseline to origin main, or to the work tree (uncommitted included)."""
        if pushed:
            return git("diff", self.baseline, f"refs/heads/{BRANCH}", cwd=self.origin)
        with tempfile.TemporaryDirectory(prefix="agentloop-index-") as scratch:
            # A private index: staging for the diff must not disturb what the agent has staged.
            index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            git("add", "-A", cwd=self.root, env=index)
            return git("diff", "--cached", self.baseline, cwd=self.root, env=index)

    def changed_files(self) -> list[str]:
        out = git("diff", "--name-only", "-z", self.baseline, f"refs/heads/{BRANCH}", cwd=self.origin)
        return [name for name in out.split("\0") if name]

    def checkout_pushed(self, dest: Path) -> Path:
        """A clean clone of origin main at `dest` (must not exist or be empty): what grading reads."""
        git("clone", "-q", "--no-hardlinks", "-b", BRANCH, str(self.origin), str(dest), cwd=self.base)
        return dest

    def remove(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.keep:
            self.remove()

    def __repr__(self) -> str:
        return f"Workspace({self.root}, baseline={self.baseline[:10]})"
