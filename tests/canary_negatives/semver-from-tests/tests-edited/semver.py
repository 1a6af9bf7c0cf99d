"""A naive version: plain tuples, no pre-release rules (what an agent writes when it skips the tests)."""

from typing import NamedTuple


class Version(NamedTuple):
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> "Version":
        major, minor, patch = (int(part) for part in text.strip().split("."))
        return cls(major, minor, patch)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"
