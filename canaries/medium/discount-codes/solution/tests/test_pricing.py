import pytest
from shop.pricing import apply_discount, cart_total, checkout


def test_cart_total():
    assert cart_total([("tea", 2), ("mug", 1)]) == 2100


def test_checkout_without_code():
    assert checkout([("biscuits", 1)]) == 299


def test_no_code_keeps_total():
    assert apply_discount(1000, None) == 1000


def test_lower_case_code():
    assert apply_discount(1000, " welcome10 ") == 900


def test_unknown_code():
    with pytest.raises(ValueError, match="unknown discount code: BOGUS"):
        apply_discount(1000, "bogus")
