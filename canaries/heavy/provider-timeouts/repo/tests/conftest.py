from typing import Any

import pytest


class RecordingTransport:
    """Answers every post with one canned reply and remembers what was sent."""

    def __init__(self, reply: dict[str, Any]):
        self.reply = reply
        self.calls: list[dict[str, Any]] = []

    def post(self, url: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.append({"url": url, **kwargs})
        return self.reply


@pytest.fixture
def transport_replying():
    return RecordingTransport
