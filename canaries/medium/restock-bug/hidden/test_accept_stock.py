from inventory.orders import fulfil
from inventory.stock import Stock


def test_level_equal_to_reorder_point_needs_reorder():
    assert Stock({"a": 5, "b": 6, "c": 0}).needs_reorder() == ["a", "c"]


def test_custom_reorder_point_is_inclusive():
    stock = Stock({"a": 3, "b": 4}, reorder_at=3, reorder_to=10)
    assert stock.restock_plan() == {"a": 7}


def test_fulfil_reports_boundary():
    assert fulfil(Stock({"x": 9, "y": 40}), {"x": 4, "y": 1}) == {"x": 15}
