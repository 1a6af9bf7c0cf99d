from shop.pricing import cart_total, checkout


def test_cart_total():
    assert cart_total([("tea", 2), ("mug", 1)]) == 2100


def test_checkout_without_code():
    assert checkout([("biscuits", 1)]) == 299
