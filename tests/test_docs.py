"""The docs cannot rot: the generated reference is current, marked commands run, options and links exist.

A ```bash block whose first line is `# doc-test` (optionally `# doc-test: exit N`) is run with bash in
a fresh temporary copy of the repository's canaries/ and examples/, so it uses only what a reader
who cloned the repo has. Blocks that need a model server (Ollama, vLLM, ...) are simply not marked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_agentloop import docgen

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
BLOCK = re.compile(r"^```bash\n(# doc-test(?::\s*exit\s+(\d+))?\n.*?)^```", re.MULTILINE | re.DOTALL)
OPTION = re.compile(r"(?<![\w-])--agent-[a-z-]+")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
BLOCK_TIMEOUT_S = 120


def _blocks() -> list[tuple[str, str, int]]:
    found = []
    for page in PAGES:
        for index, match in enumerate(BLOCK.finditer(page.read_text(encoding="utf-8")), start=1):
            found.append((f"{page.name}#{index}", match.group(1), int(match.group(2) or 0)))
    return found


def test_configuration_reference_is_current() -> None:
    committed = (DOCS / "configuration.md").read_text(encoding="utf-8")
    assert committed == docgen.render(), (
        "docs/configuration.md is stale: run `python -m pytest_agentloop.docgen > docs/configuration.md`"
    )


def test_docs_have_runnable_blocks() -> None:
    assert len(_blocks()) >= 3, "the doc-test marker was lost: no `# doc-test` blocks found in docs/"


@pytest.mark.parametrize(("script", "exit_code"), [b[1:] for b in _blocks()], ids=[b[0] for b in _blocks()])
def test_doc_command_runs(script: str, exit_code: int, tmp_path: Path) -> None:
    for folder in ("canaries", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__"))
    bin_dir = Path(sys.executable).parent  # `pytest` and `agentloop` of the interpreter under test
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTEST_ADDOPTS", None)
    done = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
    )
    assert done.returncode == exit_code, (
        f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )


def test_documented_options_exist() -> None:
    """Every `--agent-...` option a page names is one the plugin really has."""
    parser = pytest.Parser(_ispytest=True)
    from pytest_agentloop import plugin

    plugin.pytest_addoption(parser)
    known = {name for option in parser.getgroup("agentloop").options for name in option.names()}
    named = {(page.name, opt) for page in PAGES for opt in OPTION.findall(page.read_text(encoding="utf-8"))}
    unknown = sorted((page, opt) for page, opt in named if opt not in known)
    assert not unknown, f"docs name options the plugin does not have: {unknown}"


def test_relative_links_resolve() -> None:
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.name} -> {target}")
    assert not broken, f"links to files that do not exist: {broken}"
