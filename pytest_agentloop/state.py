"""Where a session keeps its agentloop state (`config.stash`), and the one way to read a run's attempts.

Cheap to import (it loads in every pytest session): the types it names are imported for checking only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_agentloop.config import Settings
    from pytest_agentloop.records import Attempt
    from pytest_agentloop.results import Results
    from pytest_agentloop.runner import Runner

RUN_ID_INPUT = "agentloop_run_id"  # the key of the run id in xdist's workerinput

settings_key: pytest.StashKey[Settings] = pytest.StashKey()  # the validated settings of the session
runner_key: pytest.StashKey[Runner] = pytest.StashKey()  # per process: models, backends, leases, gate
results_key: pytest.StashKey[Results] = pytest.StashKey()  # controller only: the owner of the attempts
run_id_key: pytest.StashKey[str] = pytest.StashKey()  # every process: the run this session belongs to


def run_attempts(config: pytest.Config) -> list[Attempt]:
    """The run's attempts, as the controller's owner holds them (earlier sessions of a resumed run
    included); every reader (summary, decide view, HTML, cards, gates) reads them from here."""
    results = config.stash.get(results_key, None)
    return results.attempts if results is not None else []


def is_worker(config: Any) -> bool:
    return hasattr(config, "workerinput")
