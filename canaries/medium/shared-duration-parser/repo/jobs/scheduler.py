"""When does a repeating job run next?"""

import re


def _parse_duration(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)([smh])\s*", text)
    if match is None:
        raise ValueError(f"bad duration: {text}")
    value, unit = int(match.group(1)), match.group(2)
    return value * {"s": 1, "m": 60, "h": 3600}[unit]


def next_run(last_run: int, every: str) -> int:
    """The epoch second of the next run, given the last one and an interval like "5m"."""
    return last_run + _parse_duration(every)
