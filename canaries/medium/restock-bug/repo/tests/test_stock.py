import pytest
from inventory.stock import Stock


def test_take_reduces_level():
    stock = Stock({"bolt": 10})
    stock.take("bolt", 3)
    assert stock.levels == {"bolt": 7}


def test_cannot_take_more_than_stocked():
    with pytest.raises(ValueError, match="only 2 of nut in stock, 3 requested"):
        Stock({"nut": 2}).take("nut", 3)


def test_low_items_need_reorder():
    assert Stock({"bolt": 1, "nut": 9}).needs_reorder() == ["bolt"]
