"""Fixtures the plugin offers to ordinary tests; the heavy modules load only when one is used."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from pytest_agentloop import CANARY_FILE

if TYPE_CHECKING:
    from pytest_agentloop.canary import Canary
    from pytest_agentloop.workspace import Workspace


@pytest.fixture
def canary_workspace(tmp_path: Path) -> Iterator[Callable[[Path | Canary], Workspace]]:
    """Factory: `canary_workspace(folder_or_canary)` gives a provisioned Workspace, removed after the test.

    The same throwaway repository (baseline commit, bare origin) every attempt gets, for tests of
    your own tools, graders or agents.
    """
    from pytest_agentloop.canary import Canary, load_canary
    from pytest_agentloop.workspace import Workspace

    made: list[Workspace] = []

    def make(source: Path | Canary) -> Workspace:
        canary = (
            source
            if isinstance(source, Canary)
            else load_canary(source / CANARY_FILE if source.is_dir() else source)
        )
        workspace = Workspace.create(canary, parent=tmp_path)
        made.append(workspace)
        return workspace

    yield make
    for workspace in made:
        if not workspace.keep:
            workspace.remove()
