import ast
from pathlib import Path

import pytest
from shop import codes, pricing


def test_codes_table():
    assert codes.CODES == {"WELCOME10": 10, "SPRING25": 25, "STAFF50": 50}


@pytest.mark.parametrize(
    ("total", "code", "expected"),
    [
        (1000, None, 1000),
        (999, "WELCOME10", 900),
        (999, "spring25", 750),
        (1001, "  Staff50 ", 501),
        (0, "STAFF50", 0),
    ],
)
def test_apply_discount(total, code, expected):
    assert pricing.apply_discount(total, code) == expected


def test_unknown_code_message():
    with pytest.raises(ValueError) as info:
        pricing.apply_discount(100, " bogus ")
    assert str(info.value) == "unknown discount code: BOGUS"


def test_checkout_applies_code():
    assert pricing.checkout([("tea", 2), ("mug", 1)], "spring25") == 1575
    assert pricing.checkout([("tea", 2)]) == 900


def test_visible_tests_cover_apply_discount():
    tree = ast.parse((Path(pricing.__file__).resolve().parents[1] / "tests" / "test_pricing.py").read_text())
    calls = [
        n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "apply_discount"
    ]
    assert len(calls) >= 3
