"""`python -m ledger.cli AMOUNT...`: print the total of the amounts given."""

import sys
from collections.abc import Sequence

from ledger.utils import fmt_money


def main(argv: Sequence[str] | None = None) -> int:
    amounts = [float(arg) for arg in (sys.argv[1:] if argv is None else argv)]
    print(f"Total: {fmt_money(sum(amounts))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
