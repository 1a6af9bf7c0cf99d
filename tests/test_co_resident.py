"""Co-residence (issue 12, point 5): models that share a host in production are tested that way.

The seeds' lesson: a model that passed loaded alone failed in production beside another. With
`[guard] co_resident`, the lease loads the group together after checking their combined fit, the
canaries run with all of them serving, and the record says which deployment shape was tested.
Ollama is the emulator of tests/support/ollama_emulator.py (several models loaded at once, as
OLLAMA_MAX_LOADED_MODELS allows).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from pytest_agentloop.memory import GiB
from tests._runs import run, tiny_suite
from tests.support.ollama_emulator import OllamaEmulator, OllamaModel

pytest_plugins = ["pytester"]

CODER = OllamaModel("coder:7b", size=3 * GiB)
HELPER = OllamaModel("helper:1b", size=2 * GiB)
FIX = [("calc.py", "def add(a, b):\n    return a + b\n")]


@pytest.fixture
def ollama() -> Iterator[OllamaEmulator]:
    with OllamaEmulator([CODER, HELPER], edits=FIX) as server:
        yield server


def _project(pytester: pytest.Pytester, url: str, models: list[str], box: str = "") -> None:
    """The run's agentloop.toml; with `box`, a [hosts.NAME] table gives the URL instead of `hosts`."""
    tiny_suite(pytester.path)
    group = json.dumps([f"ollama:{CODER.name}", f"ollama:{HELPER.name}"])
    hosts = box or f'hosts = ["{url}"]\n'
    toml = f"models = {json.dumps(models)}\n{hosts}[guard]\nco_resident = {group}\n"
    pytester.makefile(".toml", agentloop=toml)


def test_the_group_is_loaded_together_and_every_canary_runs_with_both(
    pytester: pytest.Pytester, ollama: OllamaEmulator
) -> None:
    _project(pytester, ollama.url, [f"ollama:{CODER.name}", f"ollama:{HELPER.name}"])
    result = run(pytester, "--agent-json=r.json")
    assert result.ret == 0, result.stdout.str()
    assert sorted(ollama.loads) == [(CODER.name, 8192), (HELPER.name, 8192)]  # each once, never swapped
    assert ollama.serving and all(s == sorted([CODER.name, HELPER.name]) for s in ollama.serving)
    attempts = json.loads((pytester.path / "r.json").read_text())["attempts"]
    shapes = {(a["model"], a["model_info"]["deployment"]) for a in attempts}
    assert shapes == {
        (f"ollama:{CODER.name}", f"co-resident with {HELPER.name}"),
        (f"ollama:{HELPER.name}", f"co-resident with {CODER.name}"),
    }


def test_a_partner_not_under_test_still_serves_beside_it(
    pytester: pytest.Pytester, ollama: OllamaEmulator
) -> None:
    """A helper that only runs in production (not evaluated) is loaded beside the model under test."""
    _project(pytester, ollama.url, [f"ollama:{CODER.name}"])
    assert run(pytester).ret == 0
    assert all(s == sorted([CODER.name, HELPER.name]) for s in ollama.serving)


def test_the_combined_fit_is_what_the_guard_checks(pytester: pytest.Pytester, ollama: OllamaEmulator) -> None:
    """Each model fits alone in the box's 8 GiB (less the 2 GiB reserve); the two together do not."""
    box = f'[hosts.box]\nurl = "{ollama.url}"\nmemory_gib = 8\n'
    _project(pytester, ollama.url, [f"ollama:{CODER.name}"], box)
    result = run(pytester, "-rs")
    result.stdout.fnmatch_lines([f"*won't fit: {HELPER.name} + {CODER.name} at context 8192: needs *"])
    assert ollama.loads == []
