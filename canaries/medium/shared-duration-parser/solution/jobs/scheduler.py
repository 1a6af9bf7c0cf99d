"""When does a repeating job run next?"""

from jobs.durations import parse_duration


def next_run(last_run: int, every: str) -> int:
    """The epoch second of the next run, given the last one and an interval like "5m"."""
    return last_run + parse_duration(every)
