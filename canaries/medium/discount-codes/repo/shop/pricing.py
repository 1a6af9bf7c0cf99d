"""Totals for a cart, in integer cents."""

from shop.cart import line_total


def cart_total(cart: list[tuple[str, int]]) -> int:
    return sum(line_total(sku, quantity) for sku, quantity in cart)


def checkout(cart: list[tuple[str, int]], code: str | None = None) -> int:
    return cart_total(cart)
