"""Prints the changelog section of the current release."""

from pathlib import Path

CURRENT = "1.4.0"
CHANGELOG = Path(__file__).resolve().parent / "CHANGELOG.md"


def section(version: str) -> str:
    """The lines under `## <version>` up to the next heading, without the heading."""
    lines = CHANGELOG.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"## {version}") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(line for line in lines[start:end] if line)


def current_notes() -> str:
    return section(CURRENT)
