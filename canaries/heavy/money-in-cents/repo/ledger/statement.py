"""Bank statement rows: date, movement, running balance."""

from ledger.utils import fmt_money


def statement_row(date: str, amount: float, balance: float) -> str:
    return f"{date}  {fmt_money(amount)}  {fmt_money(balance)}"
