"""The one place money is formatted; amounts are integer cents so no float rounding creeps in."""


def format_money(cents: int, currency: str = "EUR") -> str:
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    return f"{sign}{units:,}.{rest:02d} {currency}"
