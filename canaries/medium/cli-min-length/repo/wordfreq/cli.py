"""`python -m wordfreq FILE`: print the most frequent words of a text file, one `word count` per line."""

import argparse
from collections.abc import Sequence
from pathlib import Path

from wordfreq.core import top_words


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wordfreq")
    parser.add_argument("file", type=Path)
    parser.add_argument("--limit", type=int, default=10)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    text = args.file.read_text(encoding="utf-8")
    for word, count in top_words(text, args.limit):
        print(f"{word} {count}")
    return 0
