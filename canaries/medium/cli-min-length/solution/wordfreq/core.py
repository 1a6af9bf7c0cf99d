"""Counts words: lower-cased, punctuation stripped, most frequent first (ties alphabetical)."""

import re
from collections import Counter


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def top_words(text: str, limit: int = 10, min_length: int = 1) -> list[tuple[str, int]]:
    counts = Counter(word for word in words(text) if len(word) >= min_length)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
