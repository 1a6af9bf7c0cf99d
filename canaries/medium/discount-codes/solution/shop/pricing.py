"""Totals for a cart, in integer cents."""

from shop.cart import line_total
from shop.codes import CODES


def cart_total(cart: list[tuple[str, int]]) -> int:
    return sum(line_total(sku, quantity) for sku, quantity in cart)


def apply_discount(total_cents: int, code: str | None) -> int:
    if code is None:
        return total_cents
    normalized = code.strip().upper()
    if normalized not in CODES:
        raise ValueError(f"unknown discount code: {normalized}")
    return total_cents - total_cents * CODES[normalized] // 100


def checkout(cart: list[tuple[str, int]], code: str | None = None) -> int:
    return apply_discount(cart_total(cart), code)
