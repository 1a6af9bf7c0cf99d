from fetcher import fetch_with_retry


def flaky(failures):
    calls = []

    def fetch():
        calls.append(1)
        if len(calls) <= failures:
            raise ConnectionError("down")
        return "ok"

    return fetch, calls


def test_succeeds_first_time():
    fetch, calls = flaky(0)
    assert fetch_with_retry(fetch) == "ok"
    assert len(calls) == 1


def test_retries_when_asked():
    fetch, calls = flaky(2)
    assert fetch_with_retry(fetch, retries=2) == "ok"
    assert len(calls) == 3
