"""Greets people by name."""

GREETING = "Helo"


def greet(name: str) -> str:
    return f"{GREETING}, {name}!"
