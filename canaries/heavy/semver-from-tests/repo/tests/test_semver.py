"""The specification of semver.py: read all of it before implementing."""

import pytest
from semver import Version


def test_parse_plain():
    v = Version.parse("1.2.3")
    assert (v.major, v.minor, v.patch, v.prerelease) == (1, 2, 3, ())


def test_parse_prerelease_splits_on_dots_and_keeps_numbers_as_int():
    assert Version.parse("2.0.0-rc.1").prerelease == ("rc", 1)
    assert Version.parse("2.0.0-alpha.beta").prerelease == ("alpha", "beta")


def test_parse_ignores_surrounding_whitespace():
    assert Version.parse("  0.1.0\n") == Version(0, 1, 0)


def test_constructor_defaults_to_no_prerelease():
    assert Version(1, 0, 0).prerelease == ()


def test_str_round_trips():
    for text in ["1.2.3", "0.0.1-alpha", "10.20.30-rc.1.x"]:
        assert str(Version.parse(text)) == text


@pytest.mark.parametrize("text", ["1.2", "1.2.3.4", "a.b.c", "01.2.3", "1.2.3-", "1.2.3-rc..1", "-1.2.3", ""])
def test_invalid_versions_raise_value_error_with_the_text(text):
    with pytest.raises(ValueError) as info:
        Version.parse(text)
    assert str(info.value) == f"not a semantic version: {text!r}"


def test_ordering_by_numbers():
    assert Version.parse("1.2.3") < Version.parse("1.10.0") < Version.parse("2.0.0")


def test_prerelease_sorts_before_release():
    assert Version.parse("1.0.0-rc.1") < Version.parse("1.0.0")


def test_prerelease_identifiers_compare_numbers_numerically_and_below_strings():
    assert Version.parse("1.0.0-rc.2") < Version.parse("1.0.0-rc.10")
    assert Version.parse("1.0.0-1") < Version.parse("1.0.0-alpha")
    assert Version.parse("1.0.0-alpha") < Version.parse("1.0.0-alpha.1")
    assert Version.parse("1.0.0-alpha.beta") < Version.parse("1.0.0-beta")


def test_versions_are_hashable_and_equal_by_value():
    assert len({Version.parse("1.0.0"), Version(1, 0, 0)}) == 1


@pytest.mark.parametrize(("part", "expected"), [("major", "2.0.0"), ("minor", "1.3.0"), ("patch", "1.2.4")])
def test_bump_resets_lower_parts_and_drops_prerelease(part, expected):
    assert str(Version.parse("1.2.3-rc.1").bump(part)) == expected


def test_bump_unknown_part():
    with pytest.raises(ValueError) as info:
        Version(1, 0, 0).bump("build")
    assert str(info.value) == "part must be 'major', 'minor' or 'patch', got 'build'"
