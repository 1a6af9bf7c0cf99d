"""HostManager against a real host: every loaded model is a real xllamacpp server process.

Two model names map to the same SmolLM2 GGUF (the only model shipped here); to the host they are
two models, each its own server process, which is what the lease logic cares about.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped,unused-ignore]
import pytest
from gguf_host import ProcessHost, _running

from pytest_agentloop.backends.base import BackendError
from pytest_agentloop.backends.embedded import smollm2_path
from pytest_agentloop.hosts import GuardPolicy, HostManager, HostTimeout, ModelWontFit, Waits, read_events

CONTEXT = 1024


@pytest.fixture
def host(tmp_path: Path) -> Iterator[ProcessHost]:
    gguf = smollm2_path()
    served = ProcessHost(tmp_path / "registry", {"smol-a": gguf, "smol-b": gguf})
    try:
        yield served
    finally:
        served.kill_all()


def manager(host: ProcessHost, tmp_path: Path, **waits: float) -> HostManager:
    return HostManager(host, waits=Waits(**waits), root=tmp_path / "leases")


def loaded(host: ProcessHost) -> list[str]:
    return [m.name for m in host.loaded_models()]


def events(mgr: HostManager, kind: str) -> list[str]:
    return [e["model"] for e in read_events(mgr.dir) if e["event"] == kind]


def test_lease_loads_verifies_and_reuses(host: ProcessHost, tmp_path: Path) -> None:
    mgr = manager(host, tmp_path)
    with mgr.lease("smol-a", CONTEXT) as first:
        assert loaded(host) == ["smol-a"]
        assert not first.reused and first.load_s is not None
        assert (first.guard or "").startswith("fits: smol-a at context 1024")
    with mgr.lease("smol-a", CONTEXT) as second:
        assert second.reused
    assert events(mgr, "load") == ["smol-a"]
    assert loaded(host) == ["smol-a"]  # kept resident for the next lease


def test_switching_models_unloads_first_and_verifies(host: ProcessHost, tmp_path: Path) -> None:
    mgr = manager(host, tmp_path)
    with mgr.lease("smol-a", CONTEXT):
        pid_a = host._records()["smol-a"]["pid"]
    with mgr.lease("smol-b", CONTEXT):
        assert loaded(host) == ["smol-b"]
        assert not _running(pid_a)
    order = [(e["event"], e["model"]) for e in read_events(mgr.dir) if e["event"] in ("load", "unloaded")]
    assert order == [("load", "smol-a"), ("unloaded", "smol-a"), ("load", "smol-b")]


def _lease_loop(host: ProcessHost, root: Path, model: str, rounds: int, seen: multiprocessing.Queue) -> None:
    mgr = HostManager(host, waits=Waits(holders_s=120), root=root)
    for _ in range(rounds):
        with mgr.lease(model, CONTEXT):
            for _ in range(3):
                seen.put((os.getpid(), model, loaded(host)))
                time.sleep(0.1)


Seen = list[tuple[int, str, list[str]]]


def _run_workers(host: ProcessHost, root: Path, models: list[str], rounds: int) -> Seen:
    ctx = multiprocessing.get_context("fork")
    seen: multiprocessing.Queue = ctx.Queue()
    workers = [ctx.Process(target=_lease_loop, args=(host, root, m, rounds, seen)) for m in models]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=240)
    assert [w.exitcode for w in workers] == [0] * len(workers)
    return [seen.get(timeout=5) for _ in range(len(models) * rounds * 3)]


def test_two_workers_two_models_never_both_loaded(host: ProcessHost, tmp_path: Path) -> None:
    observations = _run_workers(host, tmp_path / "leases", ["smol-a", "smol-b"], rounds=2)
    assert all(resident == [model] for _, model, resident in observations), observations
    mgr = manager(host, tmp_path)
    resident: set[str] = set()
    for e in read_events(mgr.dir):  # replay the log: a load only ever happens on an empty host
        if e["event"] == "load":
            assert resident == set(), e
            resident.add(e["model"])
        elif e["event"] == "unloaded":
            resident -= set(e["model"].split(", "))


def test_two_workers_same_model_load_once(host: ProcessHost, tmp_path: Path) -> None:
    _run_workers(host, tmp_path / "leases", ["smol-a", "smol-a"], rounds=2)
    mgr = manager(host, tmp_path)
    assert events(mgr, "load") == ["smol-a"]
    assert len(events(mgr, "reuse")) == 3


def test_guard_refuses_without_loading(host: ProcessHost, tmp_path: Path) -> None:
    starved = GuardPolicy(reserve_bytes=psutil.virtual_memory().total)
    mgr = HostManager(host, guard=starved, root=tmp_path / "leases")
    with pytest.raises(ModelWontFit) as refused, mgr.lease("smol-a", CONTEXT):
        pass
    message = str(refused.value)
    assert "\n" not in message and message.startswith("won't fit: smol-a at context 1024")
    assert "weights" in message and "KV" in message and "--reserve" in message
    assert loaded(host) == [] and events(mgr, "load") == [] and events(mgr, "refused") == ["smol-a"]


def test_unload_that_never_completes_is_a_bounded_clear_error(tmp_path: Path) -> None:
    gguf = smollm2_path()
    stuck = ProcessHost(tmp_path / "registry", {"smol-a": gguf, "smol-b": gguf}, stubborn=True)
    try:
        mgr = manager(stuck, tmp_path, unload_s=1.5)
        with mgr.lease("smol-a", CONTEXT):
            pass
        stuck_unload = r"smol-a still loaded 2 s after unload; .* stop it by hand"
        with pytest.raises(HostTimeout, match=stuck_unload), mgr.lease("smol-b", CONTEXT):
            pass
        assert loaded(stuck) == ["smol-a"] and events(mgr, "load") == ["smol-a"]
    finally:
        stuck.kill_all()


def test_waiting_for_another_holder_is_bounded(host: ProcessHost, tmp_path: Path) -> None:
    mgr = manager(host, tmp_path, holders_s=0.5, poll_s=0.1)
    busy = r"waited 0 s for other workers to release smol-a"
    with mgr.lease("smol-a", CONTEXT), pytest.raises(HostTimeout, match=busy), mgr.lease("smol-b", CONTEXT):
        pass
    assert loaded(host) == ["smol-a"]


def test_a_crashed_holder_does_not_block_the_host(host: ProcessHost, tmp_path: Path) -> None:
    def hold_and_die() -> None:
        mgr = manager(host, tmp_path)
        with mgr.lease("smol-a", CONTEXT):
            os._exit(3)  # a worker killed mid-lease never releases

    crashed = multiprocessing.get_context("fork").Process(target=hold_and_die)
    crashed.start()
    crashed.join(timeout=120)
    assert crashed.exitcode == 3
    with manager(host, tmp_path, holders_s=5).lease("smol-b", CONTEXT):
        assert loaded(host) == ["smol-b"]


def test_unknown_model_names_what_the_host_has(host: ProcessHost, tmp_path: Path) -> None:
    unknown = r"has no model 'nope'; it has smol-a, smol-b"
    with pytest.raises(BackendError, match=unknown), manager(host, tmp_path).lease("nope", CONTEXT):
        pass
