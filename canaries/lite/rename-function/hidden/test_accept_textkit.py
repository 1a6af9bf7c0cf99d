from pathlib import Path

import textkit


def test_new_name_counts_words():
    assert textkit.count_words("one two\tthree\nfour") == 4


def test_old_name_is_gone():
    assert not hasattr(textkit, "cnt_words")
    assert "cnt_words" not in Path(textkit.__file__).read_text(encoding="utf-8")


def test_callers_still_work():
    assert textkit.summary("x y\nz") == "2 lines, 3 words"
    assert textkit.longest_line("p q\nr s t\nu") == "r s t"


def test_visible_tests_use_new_name():
    source = (Path(textkit.__file__).resolve().parent / "tests" / "test_textkit.py").read_text(
        encoding="utf-8"
    )
    assert "count_words" in source and "cnt_words" not in source
