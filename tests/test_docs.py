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
from typing import Any

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


# Every factual claim a doc-test can check is checked: option names (above), TOML blocks, subcommands,
# repository paths, environment variables, file names and the progress letters, across every page.
ALL_PAGES = [ROOT / "README.md", ROOT / "DESIGN.md", ROOT / "canaries" / "README.md", *PAGES]
TOML_BLOCK = re.compile(r"^```toml\n(.*?)^```", re.MULTILINE | re.DOTALL)
SUBCOMMAND = re.compile(r"(?:`|^)agentloop ([a-z][a-z-]*)(?![\w:-])", re.MULTILINE)  # not "agentloop x:"
REPO_PATH = re.compile(
    r"(?<![\w/.\"])((?:benchmarks|scripts|examples|tests|canaries|pytest_agentloop|\.ci)/[\w./-]*\w)(?![\w*])"
)
MODULE = re.compile(r"python -m ((?:benchmarks|pytest_agentloop)(?:\.\w+)+)")
ENV_VAR = re.compile(r"\bAGENTLOOP_[A-Z_]+\b")
TRANSCRIPTS = re.compile(r"([\w.-]+)\.transcripts\.jsonl")
LETTER = re.compile(r"`([A-Z.])` (budget exceeded|no tool calls|escalated|infra error|failed|passed)")


def _texts() -> list[tuple[str, str]]:
    return [(page.relative_to(ROOT).as_posix(), page.read_text(encoding="utf-8")) for page in ALL_PAGES]


def test_documented_toml_blocks_are_valid_settings_or_canaries() -> None:
    """Each ```toml block parses and validates: a canary.toml against CanarySpec, else the settings."""
    import tomllib

    from pytest_agentloop.agent.external import external_settings
    from pytest_agentloop.canary import CanarySpec
    from pytest_agentloop.config import build_settings
    from pytest_agentloop.tuning import prices_from_settings

    checked = 0
    for name, text in _texts():
        for block in TOML_BLOCK.findall(text):
            table = tomllib.loads(block)
            if "id" in table and "tier" in table:
                CanarySpec.model_validate(table)
            elif set(table.get("sandbox", {})) & {"network", "image"}:  # a canary.toml fragment
                CanarySpec.model_validate({"id": "x", "tier": "lite", "title": "t", "spec": "s", **table})
            else:
                settings = build_settings(table, name, {})
                prices_from_settings(settings.prices, settings.models)
                for agent in settings.agents:
                    external_settings(settings.agents, agent)
            checked += 1
    assert checked >= 4


def test_documented_subcommands_exist() -> None:
    from pytest_agentloop.cli import _parser

    commands = next(a for a in _parser()._actions if a.dest == "command").choices
    named = {(name, cmd) for name, text in _texts() for cmd in SUBCOMMAND.findall(text)}
    unknown = sorted((name, cmd) for name, cmd in named if cmd not in commands)
    assert not unknown, f"docs name agentloop subcommands that do not exist: {unknown}"


def test_documented_repository_paths_exist() -> None:
    """`benchmarks/bench_view.py`, `scripts/ci-services`, `python -m benchmarks.bench_loop`: all real."""
    missing = [
        (name, path)
        for name, text in _texts()
        for path in REPO_PATH.findall(text)
        if "*" not in path and not (ROOT / path).exists()
    ]
    missing += [
        (name, module)
        for name, text in _texts()
        for module in MODULE.findall(text)
        if not (ROOT / (module.replace(".", "/") + ".py")).is_file()
    ]
    assert not missing, f"docs name files that do not exist: {sorted(set(missing))}"


def test_documented_environment_variables_are_read_somewhere() -> None:
    sources = "".join(
        path.read_text(encoding="utf-8")
        for folder in ("pytest_agentloop", "tests", "scripts", "examples", ".ci")
        for path in (ROOT / folder).rglob("*")
        if path.is_file()
        and path.suffix in {".py", "", ".sh", ".yml"}
        and not {"__pycache__", "agents-venv"} & set(path.parts)  # .ci/run's venv is no source
    )
    named = {(name, var) for name, text in _texts() for var in ENV_VAR.findall(text)}
    unknown = sorted((name, var) for name, var in named if var not in sources)
    assert not unknown, f"docs name environment variables nothing reads: {unknown}"


def test_documented_transcripts_file_name_is_the_one_written() -> None:
    from pytest_agentloop.results import transcripts_beside

    for name, text in _texts():
        for stem in TRANSCRIPTS.findall(text):
            assert transcripts_beside(Path(f"{stem}.json")).name == f"{stem}.transcripts.jsonl"
            assert not stem.endswith(".json") and not stem.isupper(), f"{name}: {stem}.transcripts.jsonl"


def test_documented_outcome_letters_are_the_ones_printed() -> None:
    from pytest_agentloop.progress import LETTERS

    by_word = {outcome.replace("_", " "): letter for outcome, (letter, _) in LETTERS.items()}
    named = [(name, letter, word) for name, text in _texts() for letter, word in LETTER.findall(text)]
    assert named, "the outcome letters are documented nowhere"
    wrong = [(name, letter, word) for name, letter, word in named if by_word[word] != letter]
    assert not wrong, f"docs give the wrong progress letter: {wrong}"


def test_every_option_but_agent_config_has_a_toml_key() -> None:
    """The README's promise: everything on the command line can live in the settings file."""
    from pytest_agentloop.config import Settings

    keys = {field.alias or name for name, field in Settings.model_fields.items()}
    options = {key: option for key, (option, _) in docgen._cli_options().items()}
    without = sorted(option for key, option in options.items() if key not in keys and key != "config")
    assert not without, f"options without a TOML key: {without}"


def _leaf_fields(model: type[Any], prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, attribute name) of every canary.toml key, nested tables walked."""
    from pydantic import BaseModel

    found = []
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            found += _leaf_fields(kind, f"{prefix}{name}.")
        else:
            found.append((f"{prefix}{name}", name))
    return found


def test_every_canary_field_is_read_and_the_title_goes_where_the_docs_say() -> None:
    """No unused metadata: each documented canary.toml key is read outside canary.py, and `title` (once
    documented as "one line for reports", which no report shows) is documented as, and is, what the model
    reads first."""
    from pytest_agentloop.agent.prompts import task_message
    from pytest_agentloop.canary import CanarySpec, load_canary

    sources = "".join(
        path.read_text(encoding="utf-8")
        for path in (ROOT / "pytest_agentloop").rglob("*.py")
        if path.name not in {"canary.py", "docgen.py"}
    )
    unread = [key for key, name in _leaf_fields(CanarySpec) if f".{name}" not in sources]
    assert not unread, f"canary.toml keys the docs list but nothing reads: {unread}"
    row = next(line for line in docgen.render().splitlines() if line.startswith("| `title` |"))
    assert "report" not in row and '"Task: TITLE"' in row, row
    canary = load_canary(ROOT / "canaries" / "lite" / "validate-age" / "canary.toml")
    assert task_message(canary).startswith(f"Task: {canary.spec.title}\n"), task_message(canary)[:200]
