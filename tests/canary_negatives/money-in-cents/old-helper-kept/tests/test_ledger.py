from ledger.cli import main
from ledger.invoice import invoice_line
from ledger.report import monthly_total
from ledger.statement import statement_row
from ledger.utils import slugify


def test_invoice_line():
    assert invoice_line("Tea", 450) == "Tea: 4.50 EUR"


def test_monthly_total():
    assert monthly_total([100, 250]) == "Total: 3.50 EUR"


def test_statement_row():
    assert statement_row("2024-01-02", -1500, 250000) == "2024-01-02  -15.00 EUR  2,500.00 EUR"


def test_cli(capsys):
    assert main(["450", "1200"]) == 0
    assert capsys.readouterr().out == "Total: 16.50 EUR\n"


def test_slugify():
    assert slugify("Q1 Report!") == "q1-report"
