"""Run pytest on tiny canaries in a subprocess, as a user would: for the report, gate and store tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.tiny_canary import write_tiny_canary

# Canary folders hold Python files of their own (the task's repo, hidden checks, solution).
IGNORE = ("--ignore-glob=*/repo/*", "--ignore-glob=*/hidden/*", "--ignore-glob=*/solution/*")


def tiny_suite(root: Path) -> Path:
    """Two canaries in two tiers: `tiny` (smoke) and `tiny2` (lite)."""
    write_tiny_canary(root / "canaries" / "tiny")
    write_tiny_canary(root / "canaries" / "tiny2", id="tiny2", tier="lite")
    return root / "canaries"


def run(pytester: pytest.Pytester, *args: str, timeout: float = 300) -> pytest.RunResult:
    return pytester.runpytest_subprocess(
        "canaries", "-p", "no:cacheprovider", "-p", "no:benchmark", *IGNORE, *args, timeout=timeout
    )
