"""A minimal, valid canary written into any folder: the fixture for plugin-level tests.

`add()` subtracts; the hidden check wants a real sum; the solution fixes it. Small enough that an
attempt takes a fraction of a second, real enough to go through workspace, push and grading.
"""

from __future__ import annotations

from pathlib import Path

CANARY_TOML = '''\
id = "{id}"
tier = "{tier}"
title = "Fix add()"
spec = """
calc.py defines add(a, b) but it returns a - b. Make add(a, b) return a + b.
Run the tests, commit, push, then finish.
"""

[budget]
turns = {turns}
tokens = 20000
seconds = 120
'''

FILES = {
    "repo/calc.py": "def add(a, b):\n    return a - b\n",
    "repo/test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n",
    "hidden/conftest.py": (
        "import sys\nfrom pathlib import Path\n\n"
        "sys.path.insert(0, str(Path(__file__).resolve().parents[1]))\n"
    ),
    "hidden/test_hidden.py": (
        "from calc import add\n\n\ndef test_sum():\n    assert add(2, 3) == 5\n    assert add(-1, 1) == 0\n"
    ),
    "solution/calc.py": "def add(a, b):\n    return a + b\n",
}


def write_tiny_canary(folder: Path, *, id: str = "tiny", tier: str = "smoke", turns: int = 10) -> Path:
    """Write the canary into `folder` and return the path of its canary.toml."""
    folder.mkdir(parents=True, exist_ok=True)
    for relative, text in FILES.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    toml = folder / "canary.toml"
    toml.write_text(CANARY_TOML.format(id=id, tier=tier, turns=turns))
    return toml
