from textkit import cnt_words, longest_line, summary


def test_counts_words():
    assert cnt_words("a b  c") == 3


def test_summary():
    assert summary("a b\nc") == "2 lines, 3 words"


def test_longest_line():
    assert longest_line("a\nb c d\ne f") == "b c d"
