"""`python:MODULE:CLASS`: your own agent class, run in-process through the same Toolbox as the loop.

The class is imported from the test session's import path (the rootdir is on it with pytest's
`pythonpath` setting or a conftest.py beside it) and built with no arguments; its `run(task)`
returns an Episode. Use the `pytest_agentloop_make_agent` hook instead when it needs arguments.
"""

from __future__ import annotations

import importlib

from pytest_agentloop.agent.base import Agent
from pytest_agentloop.backends.base import BackendError


def load_python_agent(target: str) -> Agent:
    """An instance of `module.path:Class`, or a BackendError that names what is missing."""
    module_name, sep, class_name = target.partition(":")
    if not sep or not module_name or not class_name:
        raise BackendError(f"python:{target}: write python:MODULE:CLASS, e.g. python:my_agents.loop:MyAgent")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendError(
            f"python:{target}: cannot import {module_name!r} ({exc}); put it on the import path "
            '(e.g. pythonpath = ["."] in [tool.pytest.ini_options])'
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None or not callable(getattr(cls, "run", None)):
        raise BackendError(
            f"python:{target}: {module_name} has no class {class_name!r} with a run(task) method"
        )
    agent: Agent = cls()
    return agent
