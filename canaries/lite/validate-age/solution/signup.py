"""Parses the fields of the sign-up form."""

MAX_AGE = 150


def parse_age(text: str) -> int:
    cleaned = text.strip()
    if not cleaned.isdigit() or int(cleaned) > MAX_AGE:
        raise ValueError(f"age must be a whole number between 0 and {MAX_AGE}, got {text!r}")
    return int(cleaned)


def parse_name(text: str) -> str:
    name = text.strip()
    if not name:
        raise ValueError("name must not be empty")
    return name
