"""A usage error found mid-run stops the run once, with exit status 4 and one line, with or without xdist.

A request the server will never accept (a refused key, a parameter it does not take) shows up only when
an attempt chats, on whichever process runs it. `pytest.exit` inside an xdist worker is an INTERNALERROR,
so the item carries the message to the controller in its `user_properties` (xdist sends them with the
report) and is skipped; the controller stops the session, prints the line once and exits with 4.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from pytest_agentloop.scheduling import PlannedItem

PROPERTY = "agentloop_usage_error"


def stop_run(item: pytest.Item | PlannedItem, message: str) -> NoReturn:
    """End `item` and, through its report, the run: `message` is the one line the user sees."""
    item.user_properties.append((PROPERTY, message))
    raise pytest.skip.Exception("agentloop: run stopped by a usage error (see the end of the output)")


class UsageStop:
    """On the controller: the first usage error any item reports stops the session with exit status 4."""

    def __init__(self, session: pytest.Session) -> None:
        self.session = session
        self.message: str | None = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        said = next((str(value) for name, value in report.user_properties if name == PROPERTY), None)
        if said is not None and self.message is None:
            self.message = said
            self.session.shouldstop = "agentloop: a usage error stopped the run"

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.message is not None:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.message is not None:
            terminalreporter.write_line(self.message, red=True, bold=True)
