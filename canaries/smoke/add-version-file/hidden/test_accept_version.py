from pathlib import Path

import stamp


def test_version_file_has_exact_content():
    assert (Path(stamp.__file__).resolve().parent / "VERSION").read_bytes() == b"1.4.0\n"


def test_release_reads_it():
    assert stamp.release() == "1.4.0"
