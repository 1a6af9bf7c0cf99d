"""Invoice lines."""

from ledger.money import format_money


def invoice_line(description: str, amount: int) -> str:
    return f"{description}: {format_money(amount)}"
