"""These folders are deliberately wrong solutions replayed onto canaries, not tests of this project."""

collect_ignore_glob = ["*/*"]
