"""`python -m ledger.cli CENTS...`: print the total of the amounts given, in integer cents."""

import sys
from collections.abc import Sequence

from ledger.money import format_money


def main(argv: Sequence[str] | None = None) -> int:
    amounts = [int(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    print(f"Total: {format_money(sum(amounts))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
