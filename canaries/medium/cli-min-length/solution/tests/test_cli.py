from wordfreq.cli import main


def test_prints_counts(tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text("The cat and the hat. THE end!")
    assert main([str(path), "--limit", "2"]) == 0
    assert capsys.readouterr().out == "the 3\nand 1\n"


def test_min_length_filters_short_words(tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text("The cat and the hat. THE end! Hats hats")
    assert main(["--min-length", "4", str(path)]) == 0
    assert capsys.readouterr().out == "hats 2\n"
