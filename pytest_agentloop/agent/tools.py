"""The agent's tools: one pydantic model per tool gives both the JSON schema the model sees and the
validation its calls go through, so the two cannot drift.

Every agent (the loop, the pseudo-agents) acts on the workspace only through a `Toolbox`, so the
counters derived from its results (redundant calls, no-op edits, changes) mean the same thing for
all of them. A tool never raises: whatever goes wrong becomes a `ToolResult(ok=False)` whose output
tells the model what to do instead.

Files are opened without following a last symlink and without blocking, then checked before a
byte moves: only regular files with a single link (a hard link could be a file outside the
repository) and within the size caps; FIFOs, devices and sockets are refused. Every tool call ends
within the attempt's time budget: run_tests and git get at most the time that is left.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_agentloop.agent.calls import describe_errors
from pytest_agentloop.records import ToolCall, ToolResult
from pytest_agentloop.sandbox import SandboxPolicy, run_sandboxed
from pytest_agentloop.workspace import GitError, Workspace

OUTPUT_CAP = 8_000
LIST_CAP = 500
READ_CAP = 1_000_000  # bytes read_file/edit_file will load
WRITE_CAP = 1_000_000  # bytes write_file/edit_file will write
WALK_CAP = 20_000  # entries list_files looks at before it stops
_HIDDEN_PARTS = {".git", "__pycache__", ".pytest_cache"}


class ToolError(Exception):
    """A tool could not do what was asked; the message is meant for the model."""


class _Args(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReadFile(_Args):
    """Read a text file of the repository."""

    path: str = Field(description="Path relative to the repository root.")


class ListFiles(_Args):
    """List the files under a folder of the repository, recursively."""

    path: str = Field(".", description="Folder relative to the repository root.")


class WriteFile(_Args):
    """Create or overwrite a file with the given content."""

    path: str = Field(description="Path relative to the repository root.")
    content: str = Field(description="The complete new content of the file.")


class EditFile(_Args):
    """Replace one exact piece of text in a file; `old` must occur exactly once."""

    path: str = Field(description="Path relative to the repository root.")
    old: str = Field(description="The exact text to replace, unique in the file.")
    new: str = Field(description="The text to put in its place.")


class RunTests(_Args):
    """Run the repository's test command and see its output."""


class Commit(_Args):
    """Commit every change in the working tree."""

    message: str = Field(description="The commit message.")


class Push(_Args):
    """Push the commits to origin; work counts only once it is pushed."""


class Escalate(_Args):
    """Stop and ask a human, when the task cannot be done as specified."""

    reason: str = Field(description="Why the task cannot be done as specified.")


class Finish(_Args):
    """Declare the task done (after pushing)."""

    summary: str = Field(description="What was done.")


TOOL_ARGS: dict[str, type[BaseModel]] = {
    "read_file": ReadFile,
    "list_files": ListFiles,
    "write_file": WriteFile,
    "edit_file": EditFile,
    "run_tests": RunTests,
    "commit": Commit,
    "push": Push,
    "escalate": Escalate,
    "finish": Finish,
}


def tool_schemas() -> list[dict[str, Any]]:
    """OpenAI `tools` entries, one per tool, derived from the argument models."""
    return [
        {
            "type": "function",
            "function": {
                "name": name,
                "description": (model.__doc__ or "").strip(),
                "parameters": parameters_schema(model),
            },
        }
        for name, model in TOOL_ARGS.items()
    ]


def parameters_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema without pydantic's titles and docstring (noise in a prompt)."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    schema.pop("description", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    schema.setdefault("properties", {})
    return schema


def cap_output(text: str, limit: int = OUTPUT_CAP) -> str:
    """Keep the head and the tail (test summaries live at the end) and say how much was cut."""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    cut = len(text) - head - tail
    return f"{text[:head]}\n[... {cut:,} characters cut ...]\n{text[-tail:]}"


def canonical_key(name: str, arguments: dict[str, Any]) -> str:
    return name + json.dumps(arguments, sort_keys=True, separators=(",", ":"))


Ended = Literal["finished", "escalated"]


@dataclass
class _Outcome:
    output: str
    changed: bool = False


class Toolbox:
    """The tools bound to one workspace and one canary's test command."""

    def __init__(
        self, workspace: Workspace, test_command: str, limits: SandboxPolicy, *, seconds: float | None = None
    ) -> None:
        """`seconds`: the attempt's time budget, counted from now; no tool call outlasts it."""
        self.workspace = workspace
        self.test_command = test_command
        self.limits = limits
        self.deadline = None if seconds is None else time.monotonic() + seconds
        self.ended: Ended | None = None
        self.end_message = ""
        self._seen: set[str] = set()  # calls made since the last change
        self._handlers: dict[str, Callable[[Any], _Outcome]] = {
            "read_file": self._read_file,
            "list_files": self._list_files,
            "write_file": self._write_file,
            "edit_file": self._edit_file,
            "run_tests": self._run_tests,
            "commit": self._commit,
            "push": self._push,
            "escalate": self._escalate,
            "finish": self._finish,
        }

    def schemas(self) -> list[dict[str, Any]]:
        return tool_schemas()

    def execute(self, call: ToolCall) -> ToolResult:
        """Run one call; errors come back as ok=False results the model can act on."""
        model = TOOL_ARGS.get(call.name)
        if model is None:
            return self._result(
                call, False, f"unknown tool '{call.name}'; the tools are: {', '.join(TOOL_ARGS)}."
            )
        key = canonical_key(call.name, call.arguments)
        redundant = key in self._seen
        try:
            args = model.model_validate(call.arguments)
            outcome = self._handlers[call.name](args)
        except ValidationError as exc:
            return self._result(
                call, False, f"bad arguments for {call.name}: {describe_errors(exc)}", redundant
            )
        except (ToolError, ValueError, OSError, GitError) as exc:  # PathEscape is a ValueError
            self._seen.add(key)
            return self._result(call, False, f"{call.name} failed: {exc}", redundant)
        if outcome.changed:
            self._seen.clear()
        self._seen.add(key)
        return ToolResult(
            call_id=call.id,
            name=call.name,
            ok=True,
            output=cap_output(outcome.output),
            redundant=redundant,
            changed=outcome.changed,
        )

    @staticmethod
    def _result(call: ToolCall, ok: bool, output: str, redundant: bool = False) -> ToolResult:
        return ToolResult(
            call_id=call.id, name=call.name, ok=ok, output=cap_output(output), redundant=redundant
        )

    def _seconds_left(self) -> float:
        """Time a tool call may still take: the sandbox's limit, cut to what the attempt has left."""
        if self.deadline is None:
            return self.limits.timeout_s
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ToolError("the attempt's time budget is used up; nothing more can run.")
        return min(self.limits.timeout_s, left)

    def _file(self, path: str) -> Path:
        target = self.workspace.resolve(path)
        if target.is_dir():
            raise ToolError(f"'{path}' is a folder; use list_files to see what it holds.")
        return target

    def _read_text(self, path: str) -> tuple[Path, str]:
        target = self._file(path)
        fd = _open_checked(path, target, os.O_RDONLY)
        if fd is None:
            raise ToolError(f"no file '{path}'; use list_files to see which files exist.")
        with os.fdopen(fd, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > READ_CAP:
                raise ToolError(
                    f"'{path}' holds {size:,} bytes, more than the {READ_CAP:,} a tool reads; "
                    "run_tests output or a smaller file may help."
                )
            return target, f.read(READ_CAP).decode("utf-8", errors="replace")

    def _write_text(self, path: str, target: Path, text: str) -> None:
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:
            raise ToolError(
                "the content holds characters that are not valid UTF-8 (lone surrogates); send plain text."
            ) from None
        if len(data) > WRITE_CAP:
            raise ToolError(f"the content is {len(data):,} bytes, more than the {WRITE_CAP:,} a tool writes.")
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_checked(path, target, os.O_WRONLY | os.O_CREAT)
        assert fd is not None  # O_CREAT: it exists now
        with os.fdopen(fd, "wb") as f:
            f.truncate()
            f.write(data)

    def _read_file(self, args: ReadFile) -> _Outcome:
        return _Outcome(self._read_text(args.path)[1])

    def _list_files(self, args: ListFiles) -> _Outcome:
        folder = self.workspace.resolve(args.path)
        if not folder.is_dir():
            raise ToolError(f"no folder '{args.path}'; list '.' to see the repository.")
        names, complete = _files_under(folder, self.workspace.root)
        shown = names[:LIST_CAP]
        more = f"\n[... {len(names) - LIST_CAP} more files]" if len(names) > LIST_CAP else ""
        if not complete:
            more += f"\n[... stopped after {WALK_CAP:,} entries; list a smaller folder]"
        return _Outcome("\n".join(shown) + more if shown else f"'{args.path}' holds no files.")

    def _write_file(self, args: WriteFile) -> _Outcome:
        target = self._file(args.path)
        if target.exists() and self._read_text(args.path)[1] == args.content:
            return _Outcome(f"no change: '{args.path}' already has exactly this content.")
        self._write_text(args.path, target, args.content)
        return _Outcome(f"wrote {len(args.content):,} characters to '{args.path}'.", changed=True)

    def _edit_file(self, args: EditFile) -> _Outcome:
        if not args.old:
            raise ToolError("`old` is empty; give the exact text to replace (or use write_file).")
        target, text = self._read_text(args.path)
        count = text.count(args.old)
        if count != 1:
            hint = "read_file to see the current text" if count == 0 else "include more surrounding lines"
            raise ToolError(
                f"`old` occurs {count} times in '{args.path}', it must occur exactly once; {hint}."
            )
        if args.old == args.new:
            return _Outcome(f"no change: `old` and `new` are the same; '{args.path}' is unchanged.")
        self._write_text(args.path, target, text.replace(args.old, args.new, 1))
        return _Outcome(f"edited '{args.path}'.", changed=True)

    def _run_tests(self, _: RunTests) -> _Outcome:
        limits = dataclasses.replace(self.limits, timeout_s=self._seconds_left())
        result = run_sandboxed(self.test_command, self.workspace.root, limits)
        if result.timed_out:
            raise ToolError(
                f"`{self.test_command}` timed out after {limits.timeout_s:g} s; "
                f"output so far:\n{result.output}"
            )
        status = "passed" if result.exit_code == 0 else f"failed (exit code {result.exit_code})"
        killed = f" [killed: {result.killed}]" if result.killed else ""
        return _Outcome(f"`{self.test_command}` {status}{killed}\n{result.output}")

    def _commit(self, args: Commit) -> _Outcome:
        sha = self.workspace.commit(args.message, timeout=self._seconds_left())
        if sha is None:
            return _Outcome("nothing to commit: the working tree matches the last commit.")
        return _Outcome(f"committed {sha[:12]}.", changed=True)

    def _push(self, _: Push) -> _Outcome:
        if self.workspace.push(timeout=self._seconds_left()):
            return _Outcome("pushed to origin.", changed=True)
        return _Outcome("origin is already up to date; commit first if you changed files.")

    def _escalate(self, args: Escalate) -> _Outcome:
        self.ended, self.end_message = "escalated", args.reason
        return _Outcome("escalated to a human; stop here.")

    def _finish(self, args: Finish) -> _Outcome:
        self.ended, self.end_message = "finished", args.summary
        return _Outcome("finished.")


_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a device",
    stat.S_IFBLK: "a device",
    stat.S_IFSOCK: "a socket",
}


def _open_checked(path: str, target: Path, flags: int) -> int | None:
    """An fd for the regular, singly linked file at `target` (None: it does not exist), or ToolError.

    O_NOFOLLOW: a symlink swapped in after `resolve` is refused, not followed; O_NONBLOCK: opening a
    FIFO returns at once instead of waiting for a writer forever. Checks run on the open fd.
    """
    try:
        fd = os.open(target, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO):  # a symlink; a FIFO with no reader (write side)
            raise ToolError(f"refused '{path}': it is not a regular file of the repository.") from None
        raise
    info = os.fstat(fd)
    why = None
    if not stat.S_ISREG(info.st_mode):
        why = f"it is {_KINDS.get(stat.S_IFMT(info.st_mode), 'not a regular file')}, not a file"
    elif info.st_nlink > 1:
        why = "it has other hard links, which may be files outside the repository"
    if why is not None:
        os.close(fd)
        raise ToolError(f"refused '{path}': {why}.")
    os.set_blocking(fd, True)
    return fd


def _files_under(folder: Path, root: Path) -> tuple[list[str], bool]:
    """Relative paths of the files under `folder`, never following a symlinked folder out of it.

    At most WALK_CAP entries are looked at, so a tree of a million files costs bounded time; the
    flag says whether the walk saw everything.
    """
    names: list[str] = []
    seen = 0
    for top, folders, files in os.walk(folder):
        folders[:] = sorted(f for f in folders if f not in _HIDDEN_PARTS)
        seen += len(folders) + len(files)
        names.extend((Path(top) / name).relative_to(root).as_posix() for name in files)
        if seen > WALK_CAP:
            return sorted(names), False
    return sorted(names), True
