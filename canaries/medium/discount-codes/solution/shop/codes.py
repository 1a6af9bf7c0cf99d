"""Discount codes the shop accepts."""

CODES: dict[str, int] = {"WELCOME10": 10, "SPRING25": 25, "STAFF50": 50}
