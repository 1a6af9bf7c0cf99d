"""Invoice lines."""

from ledger.utils import fmt_money


def invoice_line(description: str, amount: float) -> str:
    return f"{description}: {fmt_money(amount)}"
