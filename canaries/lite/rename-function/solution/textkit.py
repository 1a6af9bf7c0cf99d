"""Small text statistics used by the report command."""


def count_words(text: str) -> int:
    return len(text.split())


def summary(text: str) -> str:
    lines = text.splitlines()
    return f"{len(lines)} lines, {count_words(text)} words"


def longest_line(text: str) -> str:
    """The line with the most words (the first one on a tie)."""
    best = ""
    for line in text.splitlines():
        if count_words(line) > count_words(best):
            best = line
    return best
