"""Every serving-stack difference between two runs named (issue 12, point 8): in `agentloop compare`,
the finding card, and the guard's caveats said once in the summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_agentloop.cli import main
from pytest_agentloop.records import RESULTS_SCHEMA, Attempt
from pytest_agentloop.report.card import render_card
from pytest_agentloop.report.stack import guard_notes, serving_stack, stack_differences
from tests._attempts import runs

OLLAMA = {
    "runtime": "ollama 0.13.1",
    "digest": "500a1f067a9f",
    "quantization": "Q4_K_M",
    "num_ctx": 8192,
    "context": 8192,
    "tool_call_parser": "qwen3",
}
LLAMACPP = {
    "runtime": "llama.cpp",
    "props": {"build_info": "b6500-abc", "n_ctx": 16384, "chat_template_sha256": "9f8e"},
    "sha256": "77aa",
    "quantization": "Q4_1",
}


def with_info(attempts: list[Attempt], **info: Any) -> list[Attempt]:
    return [a.model_copy(update={"model_info": info}) for a in attempts]


def results_file(path: Path, attempts: list[Attempt]) -> Path:
    records = [a.to_record() for a in attempts]
    path.write_text(
        json.dumps({"schema": RESULTS_SCHEMA, "run": {"started": "2026-12-01"}, "attempts": records})
    )
    return path


def test_each_runtime_is_read_as_one_stack() -> None:
    assert serving_stack(OLLAMA) == {
        "runtime version": "ollama 0.13.1",
        "weights digest": "500a1f067a9f",
        "quantization": "Q4_K_M",
        "context": 8192,
        "chat-template hash": None,
        "tool-call parser": "qwen3",
    }
    assert serving_stack(LLAMACPP)["runtime version"] == "llama.cpp b6500-abc"
    assert (
        serving_stack(LLAMACPP)["context"] == 16384
        and serving_stack(LLAMACPP)["chat-template hash"] == "9f8e"
    )


def test_compare_names_every_difference(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    newer = {**OLLAMA, "runtime": "ollama 0.13.2", "digest": "b1c2d3", "context": 4096, "num_ctx": 4096}
    newer |= {"quantization": "Q8_0", "tool_call_parser": "hermes"}
    a = results_file(tmp_path / "a.json", with_info(runs("PPP"), **OLLAMA))
    b = results_file(tmp_path / "b.json", with_info(runs("PFF"), **newer))
    assert main(["compare", str(a), str(b)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "serving stack differs: runtime version ollama 0.13.1 -> ollama 0.13.2; "
        "weights digest 500a1f067a9f -> b1c2d3; quantization Q4_K_M -> Q8_0; context 8192 -> 4096; "
        "tool-call parser qwen3 -> hermes"
    )
    same = stack_differences(with_info(runs("P"), **OLLAMA), with_info(runs("F"), **OLLAMA))
    assert same == [
        "serving stack: the same (runtime version ollama 0.13.1, weights digest 500a1f067a9f, quantization "
        "Q4_K_M, context 8192, tool-call parser qwen3)"
    ]


def test_the_card_shows_the_stack_and_a_change_within_the_run() -> None:
    attempts = with_info(runs("PP"), **OLLAMA) + with_info(runs("P"), **{**OLLAMA, "context": 4096})
    card = render_card("m", attempts, {}, {})
    assert "## Serving stack" in card
    assert "- context: 8192 / 4096 (differs within this run)" in card
    assert "- runtime version: ollama 0.13.1\n" in card


def test_guard_caveats_are_said_once_per_model() -> None:
    assumed = (
        "fits: m at context 8192: needs 9.0 GiB ... [assumed KV of 0.5 MiB per token of context, since x]"
    )
    attempts = with_info(runs("PPP"), guard=assumed) + with_info(runs("P", model="n"), guard="fits: n ...")
    assert guard_notes(attempts) == [f"guard: m: {assumed}"]
