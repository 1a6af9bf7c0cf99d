"""Semantic version numbers (https://semver.org): parsing, ordering and bumping. See tests/test_semver.py."""
