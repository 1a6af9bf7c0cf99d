from inventory.orders import fulfil
from inventory.stock import Stock


def test_order_that_leaves_plenty():
    assert fulfil(Stock({"bolt": 30}), {"bolt": 4}) == {}


def test_order_that_hits_the_reorder_level_exactly():
    stock = Stock({"bolt": 12, "nut": 8})
    assert fulfil(stock, {"bolt": 7, "nut": 1}) == {"bolt": 15}
