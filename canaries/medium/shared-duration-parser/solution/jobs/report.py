"""Human-readable descriptions of job intervals."""

from jobs.durations import parse_duration


def describe(name: str, every: str) -> str:
    """E.g. describe("backup", "2h") == "backup runs every 7200 seconds"."""
    return f"{name} runs every {parse_duration(every)} seconds"
