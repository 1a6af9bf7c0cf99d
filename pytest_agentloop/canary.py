"""The canary format: a folder with canary.toml, the starting repo, hidden checks and a solution.

```
my-canary/
  canary.toml   id, tier, the spec the agent reads, budgets, what is expected
  repo/         the starting repository (committed as the baseline; the agent works here)
  hidden/       acceptance checks (pytest files) the agent never sees
  solution/     the reference solution: files laid over repo/ by the `reference` pseudo-model
```
Loading validates everything up front so a bad canary fails collection with one line naming the
file, the field and the fix, never a traceback.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Literal, get_args

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

Tier = Literal["smoke", "lite", "medium", "heavy", "trap"]


class CanaryError(Exception):
    """A canary that cannot be used; the message names the file, the field and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CanaryBudget(_Strict):
    """What an attempt at this canary may spend; a cell's `turns` or `tokens` overrides it."""

    turns: int = Field(30, ge=1, le=10_000)  # model replies before the attempt is budget_exceeded(turns)
    tokens: int = Field(200_000, ge=100)  # prompt + completion tokens summed over every turn
    seconds: float = Field(900.0, gt=0)  # wall-clock time of the whole attempt


class Expect(_Strict):
    # "escalate": a trap whose right answer is to ask a human; a claimed success is a silent failure.
    outcome: Literal["pass", "escalate"] = "pass"
    # The work counts only once it reaches origin (grading reads the pushed tree).
    pushed: bool = True


class Checks(_Strict):
    timeout: float = Field(60.0, gt=0, le=1800)  # seconds the hidden checks may run in the sandbox
    # Files the agent must not change (e.g. the visible tests); editing one fails the attempt.
    protected: tuple[str, ...] = ()
    # A skipped hidden check proved nothing: "fail" counts it as failed, "exclude" leaves it out of
    # both counts (for checks that skip on purpose, e.g. on another platform).
    skipped: Literal["fail", "exclude"] = "fail"
    # An xfailed check (marked xfail, and it failed): "fail" counts it as failed, "pass" as passed.
    xfailed: Literal["fail", "pass"] = "fail"


class SandboxNeeds(_Strict):
    # The hidden checks or the tests reach the network (off by default: no network, not even loopback).
    network: bool = False
    # Image (or rootfs directory) for `[sandbox] engine = "podman"`: system packages, other languages.
    image: str | None = Field(None, min_length=1)


class Reference(_Strict):
    # What the `reference` pseudo-model says when it escalates a trap (the solution of an escalation).
    reason: str = "The task cannot be done as specified; a human must decide."


class CanarySpec(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")  # the item name: lowercase, digits, dashes
    tier: Tier  # smoke, lite, medium, heavy or trap; also the item's pytest marker
    title: str = Field(min_length=1)  # the task in one line: the model reads "Task: TITLE" above the spec
    spec: str = Field(min_length=1)  # the task exactly as the model reads it
    test_command: str = "python -m pytest -q"  # what the agent's run_tests tool runs in the workspace
    # Python distributions the repo or its hidden checks import beyond the standard library and
    # pytest, as requirements (e.g. "pyyaml>=6"); checked in the sandbox before every attempt.
    requires: tuple[str, ...] = ()
    budget: CanaryBudget = CanaryBudget()
    expect: Expect = Expect()
    checks: Checks = Checks()
    sandbox: SandboxNeeds = SandboxNeeds()
    reference: Reference = Reference()

    @field_validator("requires")
    @classmethod
    def _requirements(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for text in value:
            try:
                Requirement(text)
            except InvalidRequirement as exc:
                raise ValueError(f"{text!r} is not a requirement like 'pyyaml>=6' ({exc})") from None
        return value


@dataclass(frozen=True)
class Canary:
    spec: CanarySpec
    root: Path

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def tier(self) -> str:
        return self.spec.tier

    @property
    def repo_dir(self) -> Path:
        return self.root / "repo"

    @property
    def hidden_dir(self) -> Path:
        return self.root / "hidden"

    @property
    def solution_dir(self) -> Path:
        return self.root / "solution"

    @cached_property
    def content_hash(self) -> str:
        """Changes when anything that defines the task changes: spec, repo, checks or solution."""
        digest = hashlib.sha256()
        for path in sorted(p for p in self.root.rglob("*") if p.is_file() and _is_content(p)):
            digest.update(path.relative_to(self.root).as_posix().encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
        return digest.hexdigest()[:16]

    @cached_property
    def hidden_files(self) -> dict[str, bytes]:
        """The hidden checks as read at load time: grading writes these, never the folder's later state.

        An attempt that reached the canary folder (it never should) still cannot change what later
        attempts are graded with in this process.
        """
        return {
            path.relative_to(self.hidden_dir).as_posix(): path.read_bytes()
            for path in sorted(self.hidden_dir.rglob("*"))
            if path.is_file() and _is_content(path)
        }

    @property
    def hidden_tests(self) -> list[str]:
        """The hidden test files (relative to hidden/), each collected and counted on its own."""
        return [
            name
            for name in self.hidden_files
            if PurePosixPath(name).name.startswith("test_") and name.endswith(".py")
        ]


def _is_content(path: Path) -> bool:
    return not any(part in {"__pycache__", ".pytest_cache"} for part in path.parts)


def load_canary(toml_path: Path) -> Canary:
    """Read and validate one canary.toml and the folders beside it."""
    try:
        data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise CanaryError(f"{toml_path}: not valid TOML ({exc}); fix the syntax.") from None
    except OSError as exc:
        raise CanaryError(f"{toml_path}: cannot be read ({exc.strerror}).") from None
    try:
        spec = CanarySpec.model_validate(data)
    except ValidationError as exc:
        raise CanaryError(f"{toml_path}: {_describe(exc)}") from None
    canary = Canary(spec=spec, root=toml_path.parent)
    for folder, why in (
        (canary.repo_dir, "the starting repository"),
        (canary.hidden_dir, "the hidden checks"),
    ):
        if not folder.is_dir():
            raise CanaryError(
                f"{toml_path}: missing folder '{folder.name}/' ({why}); create it beside canary.toml."
            )
    if not canary.hidden_tests:
        raise CanaryError(f"{toml_path}: 'hidden/' holds no test_*.py file; add the acceptance checks there.")
    problem = next(iter(layout_problems(canary, strict=False)), None)
    if problem is not None:
        raise CanaryError(f"{toml_path}: {problem}")
    return canary


def layout_problems(canary: Canary, *, strict: bool = True) -> list[str]:
    """The layout rules a canary breaks, one line each (field, what is wrong, the fix).

    Collection applies them with `strict=False`: the folder names are only checked where the canary
    sits in a tier folder (`<tier>/<id>/`, the built-in suite's layout), so a single canary kept
    anywhere still loads. `agentloop validate` applies them all.
    """
    problems = []
    in_tier_folder = canary.root.parent.name in get_args(Tier)
    if (strict or in_tier_folder) and canary.root.parent.name != canary.tier:
        problems.append(
            f"field 'tier': {canary.tier!r} but the canary sits in folder "
            f"'{canary.root.parent.name}/'; move it to '{canary.tier}/' or fix the tier."
        )
    if (strict or in_tier_folder) and canary.root.name != canary.id:
        problems.append(
            f"field 'id': {canary.id!r} but the folder is named '{canary.root.name}/'; "
            "rename one so they match."
        )
    for path in canary.spec.checks.protected:
        if not (canary.repo_dir / path).is_file():
            problems.append(
                f"field 'checks.protected': {path!r} is not a file in repo/, so it protects nothing; "
                "fix the path."
            )
    if strict and canary.spec.expect.outcome == "pass" and not canary.solution_dir.is_dir():
        problems.append("folder 'solution/' is missing; a doable canary needs its reference solution.")
    return problems


def _describe(exc: ValidationError) -> str:
    """The first problem only, phrased as field + what is wrong + how to fix it."""
    error = exc.errors()[0]
    field = ".".join(str(part) for part in error["loc"]) or "(top level)"
    kind = error["type"]
    if kind == "missing":
        return f"field '{field}' is missing; add it (see canaries/README.md)."
    if kind == "extra_forbidden":
        return f"field '{field}' is not a canary field; remove it or fix its spelling."
    return f"field '{field}': {error['msg']} (got {error.get('input')!r})."
