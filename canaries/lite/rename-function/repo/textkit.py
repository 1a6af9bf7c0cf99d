"""Small text statistics used by the report command."""


def cnt_words(text: str) -> int:
    return len(text.split())


def summary(text: str) -> str:
    lines = text.splitlines()
    return f"{len(lines)} lines, {cnt_words(text)} words"


def longest_line(text: str) -> str:
    """The line with the most words (the first one on a tie)."""
    best = ""
    for line in text.splitlines():
        if cnt_words(line) > cnt_words(best):
            best = line
    return best
