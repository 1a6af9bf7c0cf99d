"""`python -m wordfreq FILE`: print the most frequent words of a text file, one `word count` per line."""

import argparse
from collections.abc import Sequence
from pathlib import Path

from wordfreq.core import top_words


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wordfreq")
    parser.add_argument("file", type=Path)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--min-length", type=int, default=1)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.min_length < 1:
        parser.error("--min-length must be at least 1")
    text = args.file.read_text(encoding="utf-8")
    for word, count in top_words(text, args.limit, args.min_length):
        print(f"{word} {count}")
    return 0
