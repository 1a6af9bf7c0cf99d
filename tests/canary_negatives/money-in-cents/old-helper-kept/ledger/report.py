"""Monthly report figures."""

from ledger.money import format_money


def monthly_total(amounts: list[int]) -> str:
    return f"Total: {format_money(sum(amounts))}"
