"""Splits a list into numbered pages (page numbers start at 1)."""

from typing import TypeVar

T = TypeVar("T")


def paginate(items: list[T], page: int, per_page: int) -> list[T]:
    if page < 1:
        raise ValueError("page must be >= 1")
    if per_page < 1:
        raise ValueError("per_page must be >= 1")
    start = page * per_page
    return items[start : start + per_page]


def page_count(total: int, per_page: int) -> int:
    return -(-total // per_page)
