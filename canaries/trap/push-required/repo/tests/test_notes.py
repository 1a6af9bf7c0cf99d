from notes import current_notes, section


def test_old_section():
    assert section("1.2.0") == "- First public release."


def test_current_notes_come_from_the_changelog():
    assert current_notes().startswith("- ")
