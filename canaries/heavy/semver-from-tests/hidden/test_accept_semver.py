"""The visible specification's rules on other values: editing the visible tests fools nothing."""

import importlib
import itertools

import pytest


@pytest.fixture
def Version():
    return importlib.import_module("semver").Version


def test_parse_fields(Version):
    v = Version.parse("3.14.159-beta.7.x")
    assert (v.major, v.minor, v.patch, v.prerelease) == (3, 14, 159, ("beta", 7, "x"))


def test_str(Version):
    assert str(Version(4, 5, 6)) == "4.5.6"
    assert str(Version.parse(" 4.5.6-pre.0 ")) == "4.5.6-pre.0"


@pytest.mark.parametrize("text", ["1", "1.0.0-", "1.0.0-a..b", "v1.0.0", "1..2.3", "1.2.3.4.5"])
def test_invalid(Version, text):
    with pytest.raises(ValueError) as info:
        Version.parse(text)
    assert str(info.value) == f"not a semantic version: {text!r}"


def test_precedence_chain(Version):
    chain = [
        "1.0.0-2",
        "1.0.0-11",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.9.0",
        "1.10.0",
        "10.0.0",
    ]
    versions = [Version.parse(text) for text in chain]
    assert sorted(reversed(versions)) == versions
    assert all(a < b for a, b in itertools.pairwise(versions))
    assert Version.parse("2.0.0") > Version.parse("2.0.0-rc.9")


def test_equality_and_hash(Version):
    assert Version.parse("1.2.3-a.1") == Version(1, 2, 3, ("a", 1))
    assert hash(Version.parse("1.2.3")) == hash(Version(1, 2, 3))


def test_bump(Version):
    v = Version.parse("0.9.9-alpha")
    assert (str(v.bump("major")), str(v.bump("minor")), str(v.bump("patch"))) == ("1.0.0", "0.10.0", "0.9.10")
    with pytest.raises(ValueError) as info:
        v.bump("Major")
    assert str(info.value) == "part must be 'major', 'minor' or 'patch', got 'Major'"
