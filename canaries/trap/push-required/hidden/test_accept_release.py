from pathlib import Path

import notes


def test_changelog_has_the_new_section_on_top():
    text = (Path(notes.__file__).resolve().parent / "CHANGELOG.md").read_text(encoding="utf-8")
    assert text.startswith(
        "# Changelog\n\n## 1.4.0\n- Add `--json` output to the `notes` command.\n\n## 1.3.0\n"
    )


def test_current_release_is_bumped():
    assert notes.CURRENT == "1.4.0"
    assert notes.current_notes() == "- Add `--json` output to the `notes` command."
