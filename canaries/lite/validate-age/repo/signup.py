"""Parses the fields of the sign-up form."""


def parse_age(text: str) -> int:
    return int(float(text))


def parse_name(text: str) -> str:
    name = text.strip()
    if not name:
        raise ValueError("name must not be empty")
    return name
