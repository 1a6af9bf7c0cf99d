"""A clean export of one commit: the files of its tree, written by the harness, nothing else of git.

Grading must not read a checkout that git produced, because checking out runs what the repository
asks for (filters and `.gitattributes` conversions) and a clone copies hooks and config. Here the
harness reads the tree with `git ls-tree` and the blobs with `git cat-file --batch` (neither runs a
filter, hook or external program) from a git with no config of its own beyond the repository's
(system and global config off, an empty environment), and writes each file itself: regular files
and symlinks only, never outside `dest`, submodules skipped.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_GIT_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/nonexistent",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_ATTR_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "LC_ALL": "C",
}
_GIT_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.attributesFile=/dev/null",
    "safe.directory=*",
)
_TIMEOUT_S = 120.0


class ExportError(RuntimeError):
    """The commit could not be read from the repository; a harness fault, not the model's."""


class UnsafeTree(ValueError):
    """The commit holds a path no checkout may write (`..`, `.git`, out through a symlink): model-made."""


@dataclass(frozen=True)
class Entry:
    mode: str
    sha: str
    path: str


def _git(git_dir: Path, *args: str, stdin: bytes | None = None) -> bytes:
    config = [arg for item in _GIT_CONFIG for arg in ("-c", item)]
    try:
        proc = subprocess.run(
            ["git", *config, f"--git-dir={git_dir}", *args],
            input=stdin,
            env=_GIT_ENV,
            capture_output=True,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ExportError(f"git {args[0]} on {git_dir} took over {_TIMEOUT_S:g} s") from None
    if proc.returncode != 0:
        last = proc.stderr.decode("utf-8", "replace").strip().splitlines() or [f"status {proc.returncode}"]
        raise ExportError(f"git {args[0]} on {git_dir} failed: {last[-1]}")
    return proc.stdout


def tree_entries(git_dir: Path, commit: str) -> list[Entry]:
    """Every blob and symlink of the commit's tree (recursively), in git's order."""
    out = _git(git_dir, "ls-tree", "-r", "-z", "--full-tree", commit)
    entries = []
    for record in out.split(b"\0"):
        if not record:
            continue
        meta, _, raw_path = record.partition(b"\t")
        mode, kind, sha = meta.decode("ascii").split()
        if kind == "blob":  # "commit": a submodule, whose content is not in this repository
            entries.append(Entry(mode, sha, raw_path.decode("utf-8", "surrogateescape")))
    return entries


def export_commit(git_dir: Path, commit: str, dest: Path) -> list[str]:
    """Write the commit's files under `dest` (created, must not exist); the paths written."""
    entries = tree_entries(git_dir, commit)
    blobs = _read_blobs(git_dir, [entry.sha for entry in entries])
    dest.mkdir(parents=True)
    root = dest.resolve()
    for entry in entries:
        target = _inside(root, entry.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        content = blobs[entry.sha]
        if entry.mode == "120000":
            os.symlink(os.fsdecode(content), target)
        else:
            target.write_bytes(content)
            target.chmod(0o755 if entry.mode == "100755" else 0o644)
    return [entry.path for entry in entries]


def _inside(root: Path, path: str) -> Path:
    """The destination of a tree path; git refuses `..` and absolute names, this refuses them again."""
    parts = PurePosixPath(path).parts
    if not parts or PurePosixPath(path).is_absolute() or any(p in ("..", ".", ".git") for p in parts):
        raise UnsafeTree(f"refused to export tree path {path!r}")
    target = root.joinpath(*parts)
    if not target.parent.resolve().is_relative_to(root):  # a symlinked parent leading out
        raise UnsafeTree(f"refused to export {path!r}: a symlink on its path leads outside the tree")
    return target


def _read_blobs(git_dir: Path, shas: list[str]) -> dict[str, bytes]:
    """All blobs in one `git cat-file --batch` (raw contents: no filters, no conversions)."""
    unique = list(dict.fromkeys(shas))
    if not unique:
        return {}
    out = _git(git_dir, "cat-file", "--batch", stdin="".join(f"{sha}\n" for sha in unique).encode())
    blobs, offset = {}, 0
    for sha in unique:
        end = out.index(b"\n", offset)
        header = out[offset:end].decode("ascii").split()
        if len(header) != 3 or header[0] != sha:
            raise ExportError(f"git cat-file answered {header!r} for {sha}")
        size = int(header[2])
        blobs[sha] = out[end + 1 : end + 1 + size]
        offset = end + 1 + size + 1  # the content is followed by a newline
    return blobs
