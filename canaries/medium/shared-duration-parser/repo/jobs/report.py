"""Human-readable descriptions of job intervals."""

import re


def _parse_duration(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+)([sm])\s*", text)
    if match is None:
        raise ValueError(f"bad duration: {text}")
    value, unit = int(match.group(1)), match.group(2)
    return value * 60 if unit == "m" else value


def describe(name: str, every: str) -> str:
    """E.g. describe("backup", "2h") == "backup runs every 7200 seconds"."""
    return f"{name} runs every {_parse_duration(every)} seconds"
