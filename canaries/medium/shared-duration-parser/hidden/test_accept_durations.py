import importlib

import pytest
from jobs import report, scheduler


@pytest.fixture
def durations():
    # Imported per test so a missing module fails each check instead of the whole file.
    return importlib.import_module("jobs.durations")


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("5m", 300), ("2h", 7200), (" 1h ", 3600), ("0s", 0)]
)
def test_parse_duration(durations, text, seconds):
    assert durations.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5 days", "", "h", "1.5h", "-1m", "3x"])
def test_bad_duration_message(durations, text):
    with pytest.raises(ValueError) as info:
        durations.parse_duration(text)
    assert str(info.value) == f"bad duration: {text}"


def test_both_modules_share_the_one_parser(durations):
    assert scheduler.parse_duration is durations.parse_duration
    assert report.parse_duration is durations.parse_duration
    assert not hasattr(scheduler, "_parse_duration")
    assert not hasattr(report, "_parse_duration")


def test_report_understands_hours_now():
    assert report.describe("backup", "2h") == "backup runs every 7200 seconds"
    assert scheduler.next_run(0, "2h") == 7200
