"""Checks per call site (partial credit shows how far the refactor got), plus the new module itself."""

import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def site(module_name: str):
    """Import one call site and make sure it no longer mentions the old helper."""
    module = importlib.import_module(f"ledger.{module_name}")
    assert "fmt_money" not in Path(module.__file__).read_text(encoding="utf-8")
    return module


@pytest.mark.parametrize(
    ("cents", "currency", "text"),
    [
        (123456, "EUR", "1,234.56 EUR"),
        (-5, "EUR", "-0.05 EUR"),
        (0, "USD", "0.00 USD"),
        (100000000, "EUR", "1,000,000.00 EUR"),
        (-123456789, "GBP", "-1,234,567.89 GBP"),
        (7, "EUR", "0.07 EUR"),
    ],
)
def test_format_money(cents, currency, text):
    money = importlib.import_module("ledger.money")
    assert money.format_money(cents, currency) == text


def test_format_money_default_currency():
    assert importlib.import_module("ledger.money").format_money(99) == "0.99 EUR"


def test_utils_keeps_slugify_only():
    utils = importlib.import_module("ledger.utils")
    assert not hasattr(utils, "fmt_money")
    assert utils.slugify("Q1 Report!") == "q1-report"


def test_site_invoice():
    assert site("invoice").invoice_line("Mug", 123405) == "Mug: 1,234.05 EUR"


def test_site_report():
    assert site("report").monthly_total([10, 20, 99_999]) == "Total: 1,000.29 EUR"


def test_site_statement():
    assert site("statement").statement_row("d", -1, 100) == "d  -0.01 EUR  1.00 EUR"


def test_site_cli(capsys):
    assert site("cli").main(["10", "-3", "100000"]) == 0
    assert capsys.readouterr().out == "Total: 1,000.07 EUR\n"


def test_money_tests_added():
    source = (ROOT / "tests" / "test_money.py").read_text(encoding="utf-8")
    assert "format_money" in source
