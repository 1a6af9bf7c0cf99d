from semver import Version


def test_parse_plain():
    v = Version.parse("1.2.3")
    assert (v.major, v.minor, v.patch) == (1, 2, 3)


def test_ordering_by_numbers():
    assert Version.parse("1.2.3") < Version.parse("1.10.0") < Version.parse("2.0.0")
