"""Monthly report figures."""

from ledger.utils import fmt_money


def monthly_total(amounts: list[float]) -> str:
    return f"Total: {fmt_money(sum(amounts))}"
