"""Fulfils orders from stock and reports what to reorder."""

from inventory.stock import Stock


def fulfil(stock: Stock, order: dict[str, int]) -> dict[str, int]:
    """Take every line of the order from stock, then return the restock plan."""
    for sku, quantity in order.items():
        stock.take(sku, quantity)
    return stock.restock_plan()
