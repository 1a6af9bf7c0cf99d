from stamp import release


def test_release_is_read_from_version_file():
    assert release() == "1.4.0"
