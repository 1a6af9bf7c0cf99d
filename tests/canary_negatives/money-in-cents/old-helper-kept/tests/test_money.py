from ledger.money import format_money


def test_thousands_and_cents():
    assert format_money(123456) == "1,234.56 EUR"


def test_negative_below_one_unit():
    assert format_money(-5) == "-0.05 EUR"


def test_other_currency():
    assert format_money(0, "USD") == "0.00 USD"
