import pytest
from signup import parse_age, parse_name


def test_plain_age():
    assert parse_age("42") == 42


def test_name_is_stripped():
    assert parse_name("  Ada ") == "Ada"


def test_word_is_rejected():
    with pytest.raises(ValueError, match="age must be a whole number between 0 and 150, got 'abc'"):
        parse_age("abc")
