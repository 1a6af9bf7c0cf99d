"""Settings: TOML (agentloop.toml or [tool.agentloop]) overlaid by the command line.

One pydantic model validates both sources, so a typo in a TOML key and a bad command-line value
fail the same way: one line naming the setting and the fix.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

CONFIG_FILE = "agentloop.toml"


class ConfigError(Exception):
    """A setting that cannot be used; the message names the source, the key and the fix."""


class SandboxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout_s: float = Field(120.0, gt=0)  # for the agent's own "run the tests" tool
    memory_mb: int = Field(2048, ge=64)  # address space of each sandboxed process (RLIMIT_AS)
    output_bytes: int = Field(64_000, ge=1_000)  # output kept from a run; head and tail past this
    max_processes: int = Field(256, ge=8)  # processes at once (pids cgroup; a fork storm stops here)
    file_size_mb: int = Field(64, ge=1)  # largest file a sandboxed process may write (RLIMIT_FSIZE)
    # "bwrap": namespaces (no network, no host view); "podman": a container of the canary's image;
    # "none": on the host, resource limits only (every report then says UNSANDBOXED).
    engine: Literal["bwrap", "podman", "none"] = "bwrap"
    tmp_mb: int = Field(256, ge=16)  # the sandbox's private /tmp (and HOME), a tmpfs of this size
    image: str | None = Field(None, min_length=1)  # podman image for canaries that name none


class EmbeddedSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    context: int = Field(8192, ge=512)  # context (KV cache) the in-process llama.cpp server starts with
    threads: int | None = Field(None, ge=1)  # embedded server threads (default: usable cores)


class GuardConfig(BaseModel):
    """The memory guard in front of every load on a managed host ([guard] in TOML)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True  # false loads without checking memory first (at your own risk)
    reserve_gib: float = Field(2.0, ge=0)  # kept free for the OS and everything else on the host
    margin: float = Field(0.10, ge=0, lt=1)  # "barely fits" within this fraction is refused
    parallel: int = Field(1, ge=1)  # slots the runtime serves at once (KV cache per slot)
    context: int = Field(8192, ge=512)  # context a model is leased with, unless its backend sets one
    # Model specs that share one host in production (e.g. a coder and a small helper): each is loaded
    # with the others, their combined fit is checked, and every one's canaries run with all serving.
    co_resident: list[str] = Field(default_factory=list)


class HostTable(BaseModel):
    """One machine ([hosts.NAME] in TOML): its runtime and where the guard reads its free memory.

    A model is on this machine when the table lists its spec, or when the host of its runtime URL is
    NAME or the host of `url`. The guard reads the first source given: dcgm_exporter (NVIDIA
    framebuffer; a unified-memory GPU reports none, so it falls through), node_exporter (RAM), or
    memory_gib less what the runtime reports resident.
    """

    model_config = ConfigDict(extra="forbid")

    url: str | None = None  # the runtime's base URL on this machine, e.g. http://gpu-a:11434
    models: list[str] = Field(default_factory=list)  # model specs served here: pinned to `url`
    node_exporter: str | None = None  # its Prometheus node_exporter, e.g. http://gpu-a:9100/metrics
    dcgm_exporter: str | None = None  # its NVIDIA dcgm-exporter, e.g. http://gpu-a:9400/metrics
    memory_gib: float | None = Field(None, gt=0)  # stated memory when it runs no exporter


class Settings(BaseModel):
    """Everything a run needs to know. Field names are the TOML keys."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    models: list[str] = Field(default_factory=list)
    # Host URLs dealt round-robin over the models, or a [hosts] table mapping a model spec to its URL.
    hosts: list[str] | dict[str, str] = Field(default_factory=list)
    # Write [hosts.NAME] tables (see HostTable): they are moved here from `hosts` as settings are built.
    machines: dict[str, HostTable] = Field(default_factory=dict)
    repeat: int = Field(1, ge=1, le=1000)  # repetitions per canary × model × cell (adaptive: the most)
    adaptive: bool = False  # run in rounds, stop a cell once its decision is settled (--repeat=auto)
    json_path: Path | None = Field(None, alias="json")
    keep_workspaces: bool = False
    infra_retries: int = Field(2, ge=0, le=10)  # reruns of an attempt the runtime or harness broke
    sandbox: SandboxSettings = SandboxSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    guard: GuardConfig = GuardConfig()
    smoke: bool = True  # the smoke gate before each model's matrix (--agent-no-smoke turns it off)
    # [backends.NAME] tables: options for that runtime's backend and host (e.g. ollama keep_alive).
    backends: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Sections owned by later stages (tuning matrix, prices); validated where used.
    matrix: dict[str, Any] = Field(default_factory=dict)
    prices: dict[str, Any] = Field(default_factory=dict)  # [prices."SPEC"] or [prices.local]: see Price
    # Tuning's second step (tuning.py) and the finding cards: paths, all also on the command line.
    combine: Path | None = None  # results file whose per-factor winners run together as `combined`
    diagnose: Path | None = None  # results file whose over-budget canaries get turns=x2 / tokens=x2 probes
    cards: Path | None = None  # directory for one Markdown finding card per model
    # The results history and CI gates (store/, gates.py): also on the command line, which wins.
    store: str | None = None  # results history URL: sqlite:///PATH or postgresql://... (none: no history)
    gates: list[str] = Field(default_factory=list)  # CI gates, e.g. "lite:pass_rate>=0.9"; unmet ones fail
    resume: bool = False  # continue an interrupted run (run_id's, else the one with these settings)
    run_id: str | None = None  # the run this session joins (CI shards share one); none: a new run
    # [agents.NAME] tables for `external:NAME` specs; validated in agent/external.py.
    agents: dict[str, Any] = Field(default_factory=dict)


def find_config_table(rootdir: Path, explicit: Path | None) -> tuple[dict[str, Any], str]:
    """The TOML table to use and a name for it in messages.

    Order: an explicit --agent-config file; agentloop.toml in the rootdir; [tool.agentloop] in the
    rootdir's pyproject.toml; nothing.
    """
    if explicit is not None:
        data = _read_toml(explicit)
        return data.get("tool", {}).get("agentloop", data), str(explicit)
    local = rootdir / CONFIG_FILE
    if local.is_file():
        return _read_toml(local), str(local)
    pyproject = rootdir / "pyproject.toml"
    if pyproject.is_file():
        table = _read_toml(pyproject).get("tool", {}).get("agentloop")
        if table is not None:
            return table, f"{pyproject} [tool.agentloop]"
    return {}, "defaults"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file; check the path you gave.") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the syntax.") from None


def build_settings(table: dict[str, Any], source: str, overrides: dict[str, Any]) -> Settings:
    """Validate the TOML table with the command-line values laid over it (command line wins)."""
    merged = {**split_hosts(table), **{key: value for key, value in overrides.items() if value is not None}}
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        origin = "the command line" if error["loc"][0] in overrides else source
        if error["type"] == "extra_forbidden":
            raise ConfigError(f"{origin}: unknown setting '{key}'; remove it or fix its spelling.") from None
        raise ConfigError(
            f"{origin}: setting '{key}': {error['msg']} (got {error.get('input')!r})."
        ) from None


def split_hosts(table: dict[str, Any]) -> dict[str, Any]:
    """`[hosts]` holds spec = URL lines and [hosts.NAME] machine tables: the tables go to `machines`
    (kept when --agent-host replaces the URLs), and a table's `models` are pinned to its `url`; with
    no model pinned anywhere, the tables' URLs are dealt round-robin, as --agent-host URLs are."""
    hosts = table.get("hosts")
    if not isinstance(hosts, dict):
        return table
    machines = {name: value for name, value in hosts.items() if isinstance(value, dict)}
    if not machines:
        return table
    pinned = {spec: url for spec, url in hosts.items() if not isinstance(url, dict)}
    for machine in machines.values():
        if machine.get("url"):
            pinned.update({spec: machine["url"] for spec in machine.get("models") or []})
    urls = [machine["url"] for machine in machines.values() if machine.get("url")]
    return {**table, "hosts": pinned or urls, "machines": {**table.get("machines", {}), **machines}}
