"""The memory guard: sizing from the real SmolLM2 GGUF header, the verdict, and `agentloop fit`."""

from __future__ import annotations

from pathlib import Path

import pytest
from gguf_host import ProcessHost

from pytest_agentloop.backends.embedded import smollm2_path
from pytest_agentloop.backends.lifecycle import ModelMetadata
from pytest_agentloop.fit import fit_command
from pytest_agentloop.memory import (
    CONTEXT_STEP,
    Available,
    GiB,
    MetadataError,
    MiB,
    available_memory,
    estimate,
    metadata_from_gguf,
    reserved_estimate,
    verdict,
)


@pytest.fixture(scope="module")
def smol() -> ModelMetadata:
    return metadata_from_gguf(smollm2_path())


def test_header_of_the_real_gguf(smol: ModelMetadata) -> None:
    assert (smol.architecture, smol.layers, smol.kv_heads, smol.head_dim_k, smol.head_dim_v) == (
        "llama",
        30,
        3,
        64,
        64,
    )
    assert smol.quantization == "Q4_1" and smol.context_max == 8192 and smol.vocab_size == 49152
    assert 0.95 < smol.weights_bytes / smollm2_path().stat().st_size < 1.0  # tensors, not the header


def test_kv_follows_the_formula(smol: ModelMetadata) -> None:
    kv = estimate(smol, 8192).kv
    assert kv == 30 * 8192 * 3 * (64 + 64) * 2 == 180 * MiB  # llama.cpp logs "size = 180.00 MiB"
    assert estimate(smol, 4096, parallel=2).kv == kv
    assert estimate(smol, 8192, kv_bytes_per_elem=1.0).kv == kv // 2


def test_per_layer_kv_heads_and_unknown_graph_shape() -> None:
    hybrid = ModelMetadata("hybrid", "x", 4, (0, 8, 0, 8), 128, 64, None, 10 * MiB)
    est = estimate(hybrid, 1000)
    assert est.kv == 1000 * 16 * (128 + 64) * 2
    assert est.graph == est.kv // 6  # Ollama's fallback when the architecture's graph is unknown


def test_vllm_budgets_its_reserved_fraction() -> None:
    est = reserved_estimate("Qwen/Qwen3-8B", 8192, 0.9, 24 * GiB)
    assert est.total == int(0.9 * 24 * GiB) and est.breakdown() == "reserved 21.6 GiB"


def test_barely_fits_is_refused_with_the_largest_context_that_fits(smol: ModelMetadata) -> None:
    est = estimate(smol, 16384)
    roomy = Available("ram", "RAM", 24 * GiB, est.total * 2, 0)
    assert verdict(est, roomy).fits
    barely = Available("ram", "RAM", 24 * GiB, int(est.total * 1.05), 0)
    refused = verdict(est, barely)
    assert not refused.fits and "\n" not in refused.message
    assert refused.message.startswith(
        f"won't fit: {smol.name} at context 16384: needs 547 MiB (weights 92 MiB"
    )
    suggested = int(refused.message.split("a context of at most ")[1].split()[0])
    assert suggested % CONTEXT_STEP == 0 and suggested < 16384
    assert verdict(estimate(smol, suggested), barely).fits
    assert not verdict(estimate(smol, suggested + CONTEXT_STEP), barely).fits


def test_available_memory_subtracts_the_reserve() -> None:
    found = available_memory(reserve_bytes=1 * GiB, device="ram")
    assert found.kind == "ram" and 0 < found.usable == found.free - GiB < found.total
    assert available_memory(reserve_bytes=found.total * 2, device="ram").usable == 0


def test_not_a_gguf_is_a_one_line_error(tmp_path: Path) -> None:
    bogus = tmp_path / "model.gguf"
    bogus.write_text("not a model")
    with pytest.raises(MetadataError, match=r"model.gguf: cannot read a GGUF header .*pass a .gguf"):
        metadata_from_gguf(bogus)


def test_estimate_covers_a_real_server(smol: ModelMetadata, tmp_path: Path) -> None:
    """The guard must not underestimate: RSS growth of a real xllamacpp server stays within it."""
    host = ProcessHost(tmp_path, {"smol": smollm2_path()})
    try:
        host.load("smol", 2048)
        record = host.wait_ready("smol")
        grown = host.loaded_models()[0].size_bytes or 0
        grown -= int(record["rss_before"])
        sized = estimate(smol, 2048)
        assert sized.total - sized.overhead < grown <= sized.total  # buffers measured, overhead an allowance
    finally:
        host.kill_all()


Capture = pytest.CaptureFixture[str]


def test_fit_command_exit_status(capsys: Capture) -> None:
    assert fit_command(["embedded:smollm2-135m", "--context", "4096"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("model      embedded:smollm2-135m (llama, Q4_1, 30 layers")
    assert out[-1].startswith("fits: embedded:smollm2-135m at context 4096")
    assert fit_command([str(smollm2_path()), "--context", "4096", "--reserve", "1000"]) == 1
    assert capsys.readouterr().out.splitlines()[-1].startswith("won't fit: ")


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["embedded:smollm2-135m"], "required: --context"),
        (["embedded:smollm2-135m", "--context", "0"], "--context and --parallel must be ≥ 1"),
        (["embedded:smollm2-135m", "--context", "8", "--kv-type", "q5"], "invalid choice: 'q5'"),
        (["ollama:qwen3", "--context", "8"], "pass a .gguf path or an embedded: spec"),
        (["/no/such.gguf", "--context", "8"], "/no/such.gguf: No such file"),
    ],
)
def test_fit_usage_errors_are_one_line(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fit_command(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("agentloop fit: error: ") and words in err
