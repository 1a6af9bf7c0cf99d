import inspect

import pytest
from fetcher import fetch_with_retry


def test_defaults_in_signature():
    params = inspect.signature(fetch_with_retry).parameters
    assert params["retries"].default == 3
    assert params["backoff"].default == 0.5


def test_default_retries_three_times_with_default_backoff():
    calls, waits = [], []

    def fetch():
        calls.append(1)
        if len(calls) <= 3:
            raise ConnectionError("down")
        return "ok"

    assert fetch_with_retry(fetch, sleep=waits.append) == "ok"
    assert waits == [0.5, 1.0, 2.0]


def test_gives_up_after_default_retries():
    calls = []

    def fetch():
        calls.append(1)
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        fetch_with_retry(fetch, sleep=lambda _: None)
    assert len(calls) == 4
