"""How the harness declines an attempt (smoke gate, resume, won't fit): a skip reported at the canary."""

from __future__ import annotations

from typing import NoReturn

import pytest


def skip_attempt(reason: str) -> NoReturn:
    """Skip the running canary item, reported at the canary (`-rs` groups skips per canary file),
    not at the plugin line that decided it, as a skip mark would be."""
    raise pytest.skip.Exception(reason, _use_item_location=True)
