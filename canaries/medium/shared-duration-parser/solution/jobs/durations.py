"""The one parser for interval strings like "90s", "5m" or "2h"."""

import re

_SECONDS_PER_UNIT = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)([smh])\s*", text)
    if match is None:
        raise ValueError(f"bad duration: {text}")
    return int(match.group(1)) * _SECONDS_PER_UNIT[match.group(2)]
