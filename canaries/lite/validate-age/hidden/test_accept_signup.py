import pytest
from signup import parse_age


@pytest.mark.parametrize(("text", "age"), [("0", 0), (" 42 ", 42), ("150", 150), ("007", 7)])
def test_valid_ages(text, age):
    assert parse_age(text) == age


@pytest.mark.parametrize("text", ["abc", "", "  ", "-1", "+3", "151", "4.5", "1e2", "12 3"])
def test_invalid_ages_have_the_exact_message(text):
    with pytest.raises(ValueError) as info:
        parse_age(text)
    assert str(info.value) == f"age must be a whole number between 0 and 150, got {text!r}"
