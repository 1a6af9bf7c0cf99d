"""Calls a flaky function again when it raises ConnectionError."""

from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def fetch_with_retry(
    fetch: Callable[[], T],
    retries: int = 0,
    backoff: float = 2.0,
    sleep: Callable[[float], None] | None = None,
) -> T:
    """Call `fetch`; on ConnectionError wait backoff * 2**n and try again, up to `retries` more times."""
    for attempt in range(retries + 1):
        try:
            return fetch()
        except ConnectionError:
            if attempt == retries:
                raise
            if sleep is not None:
                sleep(backoff * 2**attempt)
    raise AssertionError("unreachable")
