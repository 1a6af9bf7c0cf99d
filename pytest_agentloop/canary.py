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
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

Tier = Literal["smoke", "lite", "medium", "heavy", "trap"]


class CanaryError(Exception):
    """A canary that cannot be used; the message names the file, the field and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Budget(_Strict):
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
    title: str = Field(min_length=1)  # one line for reports
    spec: str = Field(min_length=1)  # the task exactly as the model reads it
    test_command: str = "python -m pytest -q"  # what the agent's run_tests tool runs in the workspace
    budget: Budget = Budget()
    expect: Expect = Expect()
    checks: Checks = Checks()
    sandbox: SandboxNeeds = SandboxNeeds()
    reference: Reference = Reference()


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
    if not any(canary.hidden_dir.rglob("test_*.py")):
        raise CanaryError(f"{toml_path}: 'hidden/' holds no test_*.py file; add the acceptance checks there.")
    return canary


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
