"""The throwaway git repository an attempt works in, and the bare `origin` it pushes to.

Grading reads what reached `origin main`, never the agent's work tree, so a model that edits files
but never pushes is seen as such. Git runs as plain subprocesses (one `git` per step, no library
in between) because provisioning is on every attempt's path: a workspace costs a few `git` calls.
Every call pins its identity and ignores user/system config, so a fresh CI machine with no global
git identity behaves the same as a laptop.

The harness's git never executes repository content. The work tree (and, for an external agent or
an unsandboxed run, `.git` and origin) is written by untrusted code, and git will run programs its
config names: filters, diff drivers, textconv, hooks, fsmonitor, pack programs, ssh commands. So:
system and global config are off; the repo's and origin's config files are put back to exactly what
the harness wrote before every harness git call in them, and files that would make git read config
or attributes from elsewhere (`commondir`, `config.worktree`, `info/attributes`) are removed; `-c`
pins hooks, fsmonitor, attributes, protocols (only local paths), credential helpers and pagers off;
diffs run with `--no-ext-diff --no-textconv`; pushes name origin's path, not a remote whose config
could name a program. Git runs with a minimal environment (no API keys for a filter to read) and a
time limit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
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
    "core.attributesFile=/dev/null",
    "core.sshCommand=false",
    "core.askPass=",
    "core.pager=cat",
    "credential.helper=",
    "safe.directory=*",
    "commit.gpgsign=false",
    "tag.gpgsign=false",
    "protocol.allow=never",
    "protocol.file.allow=always",
    "gc.auto=0",
    "maintenance.auto=false",
    "submodule.recurse=false",
)
# Files in a git dir that make git read config or attributes the harness did not write.
_FOREIGN = ("commondir", "config.worktree", "info/attributes")
_GIT_TIMEOUT_S = 300.0
# The only variables of the harness's environment git gets; no API keys, no proxies.
_GIT_PASS = ("PATH", "TMPDIR")
_IGNORED = shutil.ignore_patterns(".git", "__pycache__", ".pytest_cache")


_PLAIN_DIFF = ("--no-ext-diff", "--no-textconv")
_PATH_MAX = 1024
_NAME_MAX = 255


def _left(deadline: float) -> float:
    """Seconds until `deadline`, never less than a second (git's own timeout then reports it)."""
    return max(deadline - time.monotonic(), 1.0)


class PathEscape(ValueError):
    """A path the agent may not touch; the message is shown to the model."""


class GitError(RuntimeError):
    """A git command failed; the message is git's own last line, fit to show the model."""


def _git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in _GIT_PASS if k in os.environ}
    name, email = IDENTITY
    env.update(
        GIT_AUTHOR_NAME=name,
        GIT_AUTHOR_EMAIL=email,
        GIT_COMMITTER_NAME=name,
        GIT_COMMITTER_EMAIL=email,
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        GIT_ATTR_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_NO_REPLACE_OBJECTS="1",
        HOME=os.devnull,
        LC_ALL="C",
    )
    env.update(extra or {})
    return env


def git(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    timeout: float = _GIT_TIMEOUT_S,
) -> str:
    """Run one git command with the harness's pinned settings; stdout, or GitError when it fails."""
    config = [arg for item in _SAFE_CONFIG for arg in ("-c", item)]
    if not cwd.is_dir():
        raise GitError(f"git {args[0]} failed: {cwd} does not exist (was the workspace removed?)")
    try:
        proc = subprocess.run(
            ["git", *config, *args],
            cwd=cwd,
            env=_git_env(env),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise GitError(f"git {args[0]} failed: no result within {timeout:g} s") from None
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
        # The config files as the harness wrote them; put back before each harness git call.
        self._configs = {
            git_dir: (git_dir / "config").read_bytes() for git_dir in (self.root / ".git", self.origin)
        }

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
        git("init", "-q", "--template=", "-b", BRANCH, cwd=root)
        git("add", "-A", cwd=root)
        fixed = {"GIT_AUTHOR_DATE": _BASELINE_DATE, "GIT_COMMITTER_DATE": _BASELINE_DATE}
        git("commit", "-q", "--allow-empty", "-m", f"baseline: {canary.id}", cwd=root, env=fixed)
        git("clone", "-q", "--bare", "--template=", str(root), str(origin), cwd=base)
        name, email = IDENTITY
        # No hooks in either repository, also for the git processes `-c` does not reach: a local
        # push runs origin's receive-pack with the caller's config parameters cleared.
        for git_dir in (root / ".git", origin):
            with (git_dir / "config").open("a", encoding="utf-8") as config:
                config.write("[core]\n\thooksPath = /dev/null\n\tfsmonitor = false\n")
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
        if "\0" in path:
            raise PathEscape("refused a path with a NUL byte in it; give a plain relative path")
        if len(path) > _PATH_MAX or any(len(part) > _NAME_MAX for part in PurePosixPath(path).parts):
            raise PathEscape(
                f"refused a path of {len(path):,} characters: "
                f"paths stop at {_PATH_MAX:,} characters, names at {_NAME_MAX}"
            )
        if PurePosixPath(path).is_absolute():
            raise PathEscape(
                f"refused '{path}': absolute paths are not allowed; use a path relative to the repo root"
            )
        root = self.root.resolve()
        candidate = root / path
        try:
            relative = candidate.resolve().relative_to(root)
        except (RuntimeError, OSError) as exc:  # a symlink loop (3.11 raises RuntimeError), or ELOOP
            raise PathEscape(f"refused '{path}': its symlinks cannot be resolved ({exc})") from None
        except ValueError:
            why = "a symlink on it leads" if ".." not in PurePosixPath(path).parts else "it points"
            raise PathEscape(f"refused '{path}': {why} outside the repository") from None
        if ".git" in relative.parts or ".git" in PurePosixPath(path).parts:
            raise PathEscape(
                f"refused '{path}': .git is managed by the harness; use the commit and push tools"
            )
        return root / relative

    def _git(
        self, *args: str, at: Path, timeout: float = _GIT_TIMEOUT_S, env: Mapping[str, str] | None = None
    ) -> str:
        """git in the work tree or origin, after putting back the config the harness wrote there."""
        git_dir = self._git_dir(at, args[0])
        written = self._configs[git_dir]
        config = git_dir / "config"
        if config.is_symlink() or not config.is_file() or config.read_bytes() != written:
            config.unlink(missing_ok=True)
            config.write_bytes(written)
        for name in _FOREIGN:
            (git_dir / name).unlink(missing_ok=True)
        where = {"GIT_DIR": str(git_dir)} | ({"GIT_WORK_TREE": str(at)} if at == self.root else {})
        return git(*args, cwd=at, timeout=timeout, env=where | dict(env or {}))

    def _git_dir(self, at: Path, command: str) -> Path:
        """The git dir of the work tree or origin, refused when something replaced it since."""
        git_dir = at / ".git" if at == self.root else at
        if git_dir.is_symlink() or not git_dir.is_dir():
            raise GitError(f"git {command} failed: {git_dir} is no longer the harness's repository")
        return git_dir

    def commit(self, message: str, *, timeout: float = _GIT_TIMEOUT_S) -> str | None:
        """Stage everything and commit; the new sha, or None when there was nothing to commit."""
        # Rebuild the index from the work tree: git's stat cache misses a same-size edit made in the
        # index's second with an older mtime (`cp -p`, shutil.copy2), and that edit must not be lost.
        deadline = time.monotonic() + timeout
        (self._git_dir(self.root, "commit") / "index").unlink(missing_ok=True)
        self._git("add", "-A", at=self.root, timeout=timeout)
        status = self._git(
            "status", "--porcelain", "--untracked-files=no", at=self.root, timeout=_left(deadline)
        )
        if not status.strip():
            return None
        self._git("commit", "-q", "-m", message or "(no message)", at=self.root, timeout=_left(deadline))
        return self._git("rev-parse", "HEAD", at=self.root, timeout=_left(deadline)).strip()

    def push(self, *, timeout: float = _GIT_TIMEOUT_S) -> bool:
        """Push HEAD to origin main (fast-forward only); True when origin moved.

        Pushes to origin's path, not the remote `origin`, so no remote config picks the program."""
        deadline = time.monotonic() + timeout
        before = self.pushed_head()
        self._git(
            "push", "-q", "--no-verify", str(self.origin), f"HEAD:refs/heads/{BRANCH}",
            at=self.root, timeout=_left(deadline),
        )  # fmt: skip
        return self.pushed_head() != before

    def pushed_head(self) -> str:
        return self._git("rev-parse", f"refs/heads/{BRANCH}", at=self.origin).strip()

    def pushed(self) -> bool:
        return self.pushed_head() != self.baseline

    def diff_from_baseline(self, *, pushed: bool = True) -> str:
        """Unified diff from the baseline to origin main, or to the work tree (uncommitted included)."""
        if pushed:
            return self._git("diff", *_PLAIN_DIFF, self.baseline, f"refs/heads/{BRANCH}", at=self.origin)
        with tempfile.TemporaryDirectory(prefix="agentloop-index-") as scratch:
            # A private index: staging for the diff must not disturb what the agent has staged.
            index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            self._git("add", "-A", at=self.root, env=index)
            return self._git("diff", *_PLAIN_DIFF, "--cached", self.baseline, at=self.root, env=index)

    def changed_files(self) -> list[str]:
        out = self._git(
            "diff", *_PLAIN_DIFF, "--name-only", "-z", self.baseline, f"refs/heads/{BRANCH}", at=self.origin
        )
        return [name for name in out.split("\0") if name]

    def checkout_pushed(self, dest: Path) -> Path:
        """A clean clone of origin main at `dest` (must not exist or be empty): what grading reads."""
        self._git(
            "clone", "-q", "--no-hardlinks", "--template=", "-b", BRANCH, str(self.origin), str(dest),
            at=self.origin,
        )  # fmt: skip
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
