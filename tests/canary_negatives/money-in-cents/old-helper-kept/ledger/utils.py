"""Small helpers shared by the ledger modules."""

import re


def fmt_money(amount: float) -> str:
    return f"{amount:,.2f} EUR"


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
