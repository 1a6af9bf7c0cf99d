"""The grader's pytest plugin: runs inside the grading sandbox and streams every report to the harness.

Loaded with `-p` before any test module (so before any pushed code), it opens the result channel (a
FIFO the harness reads while the checks run) and writes one JSON line per event: collection errors,
the collected checks, each phase of each check, and at the end what it saw of tampering (pytest
internals replaced, plugins registered by someone else) and which installed distributions the run
imported. A line the harness has read cannot be rewritten later, unlike a report file on disk.

Standard library and pytest only: the harness copies this file beside the checks as
`agentloop_grader.py`; it is never imported from the harness's package inside the sandbox.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import _pytest.main
import _pytest.python
import _pytest.reports
import _pytest.runner
import pluggy
import pytest

CHANNEL_ENV = "AGENTLOOP_CHANNEL"
_TEXT_CAP = 3000  # characters of a failure's traceback sent to the harness
# Distributions pytest itself loads; never the canary's dependencies.
_PYTEST_OWN = {
    "pytest",
    "pluggy",
    "iniconfig",
    "packaging",
    "pygments",
    "exceptiongroup",
    "tomli",
    "colorama",
}

# What a fake grade would replace: the run loop, the report factory, the call wrapper, the hook caller.
_WATCHED: tuple[tuple[object, str], ...] = (
    (_pytest.runner, "runtestprotocol"),
    (_pytest.runner, "call_and_report"),
    (_pytest.runner, "call_runtest_hook"),
    (_pytest.runner, "check_interactive_exception"),
    (_pytest.runner.CallInfo, "from_call"),
    (_pytest.reports.TestReport, "from_item_and_call"),
    (_pytest.reports.TestReport, "__init__"),
    (_pytest.reports.BaseReport, "passed"),
    (_pytest.reports.BaseReport, "failed"),
    (_pytest.python, "pytest_pyfunc_call"),
    (_pytest.python.Function, "runtest"),
    (_pytest.main, "pytest_runtestloop"),
    (pluggy.HookCaller, "__call__"),
    (pluggy.PluginManager, "register"),
    (pluggy.PluginManager, "_hookexec"),
    (json, "dumps"),
    (os, "write"),
)


def _name(owner: object, attr: str) -> str:
    if isinstance(owner, type):
        return f"{owner.__module__}.{owner.__qualname__}.{attr}"
    return f"{getattr(owner, '__name__', owner)}.{attr}"


def _snapshot() -> dict[str, object]:
    return {_name(owner, attr): vars(owner).get(attr) for owner, attr in _WATCHED}


def _open_channel() -> int | None:
    path = os.environ.pop(CHANNEL_ENV, None)
    return os.open(path, os.O_WRONLY) if path else None


_FD = _open_channel()
_ORIGINALS = _snapshot()
_MODULES_AT_START = set(sys.modules)


def _send(event: dict[str, Any]) -> None:
    if _FD is None:
        return
    data = (json.dumps(event) + "\n").encode()
    while data:
        data = data[os.write(_FD, data) :]


class Grader:
    """The hooks; an instance is registered so the harness can also find it by name."""

    def __init__(self) -> None:
        self.plugins_at_start: set[int] = set()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        self.plugins_at_start = {id(p) for p in session.config.pluginmanager.get_plugins()}
        _send({"e": "hello", "pid": os.getpid()})

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            text = str(report.longrepr).strip() or "collection failed"
            _send(
                {
                    "e": "collect_error",
                    "id": report.nodeid,
                    "msg": text.splitlines()[-1][:300],
                    "text": text[-_TEXT_CAP:],
                }
            )

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        _send({"e": "collected", "ids": [item.nodeid for item in session.items]})

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        _send(
            {
                "e": "report",
                "id": report.nodeid,
                "when": report.when,
                "outcome": report.outcome,
                "xfail": hasattr(report, "wasxfail"),
                "text": str(report.longrepr)[-_TEXT_CAP:] if report.failed else "",
            }
        )

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        _send(
            {
                "e": "finish",
                "status": int(exitstatus),
                "patched": self._patched(),
                "plugins": self._foreign_plugins(session),
                "imports": _environment_imports(),
            }
        )

    def _patched(self) -> list[str]:
        now = _snapshot()
        patched = [name for name, original in _ORIGINALS.items() if now.get(name) is not original]
        if globals().get("_send") is not _SEND or sys.modules.get(__name__) is not _MODULE:
            patched.append("agentloop_grader._send")
        return patched

    def _foreign_plugins(self, session: pytest.Session) -> list[str]:
        """Plugins registered after the session started that are not conftest files of the checks."""
        foreign = []
        for plugin in session.config.pluginmanager.get_plugins():
            if id(plugin) in self.plugins_at_start or _is_hidden_conftest(plugin, session):
                continue
            foreign.append(session.config.pluginmanager.get_name(plugin) or repr(plugin)[:80])
        return foreign


def _is_hidden_conftest(plugin: object, session: pytest.Session) -> bool:
    path = getattr(plugin, "__file__", None)
    if not path or os.path.basename(path) != "conftest.py":
        return False
    confcutdir = session.config.getoption("confcutdir")
    return bool(confcutdir) and os.path.realpath(path).startswith(os.path.realpath(confcutdir) + os.sep)


def _environment_imports() -> list[str]:
    """Installed distributions (site-packages) the run imported, beyond pytest's own."""
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    found = set()
    for name in set(sys.modules) - _MODULES_AT_START:
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None) or ""
        if "site-packages" not in path and "dist-packages" not in path:
            continue
        for dist in owners.get(name.partition(".")[0], [name.partition(".")[0]]):
            if dist.lower() not in _PYTEST_OWN:
                found.add(dist)
    return sorted(found)


_MODULE = sys.modules[__name__]
_SEND = _send


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(Grader(), "agentloop-grader")
