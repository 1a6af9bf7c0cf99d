"""Reads the release number from the VERSION file at the repository root."""

from pathlib import Path

VERSION_FILE = Path(__file__).resolve().parent / "VERSION"


def release() -> str:
    return VERSION_FILE.read_text(encoding="utf-8").strip()
