"""Bank statement rows: date, movement, running balance."""

from ledger.money import format_money


def statement_row(date: str, amount: int, balance: int) -> str:
    return f"{date}  {format_money(amount)}  {format_money(balance)}"
