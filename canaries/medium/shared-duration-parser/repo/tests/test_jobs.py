from jobs.report import describe
from jobs.scheduler import next_run


def test_next_run_minutes():
    assert next_run(1000, "5m") == 1300


def test_describe_seconds():
    assert describe("ping", "30s") == "ping runs every 30 seconds"
