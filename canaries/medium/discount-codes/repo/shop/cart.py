"""A cart is a list of (sku, quantity) lines priced from the catalogue."""

CATALOGUE = {"tea": 450, "mug": 1200, "biscuits": 299}


def line_total(sku: str, quantity: int) -> int:
    if sku not in CATALOGUE:
        raise KeyError(f"unknown sku: {sku}")
    return CATALOGUE[sku] * quantity
