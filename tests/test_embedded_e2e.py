"""The real embedded model (SmolLM2-135M under llama.cpp, in-process) through the whole pipeline.

No scripting: a real model answers over real HTTP, on a built-in smoke canary, and the attempt is
graded by its hidden checks. The model is far too small to pass; what must hold is that the
pipeline records a real outcome for it, never an infra error, with the audit fingerprint filled in.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

SMOKE = Path(__file__).resolve().parents[1] / "canaries" / "smoke" / "fix-greeting-typo"


def test_smoke_canary_on_the_embedded_model_is_recorded(pytester: pytest.Pytester) -> None:
    shutil.copytree(SMOKE, pytester.path / "canaries" / SMOKE.name)
    # Two short turns keep it to seconds on 2 CPU cores; constrained decoding makes SmolLM2 emit calls.
    pytester.makefile(
        ".toml",
        agentloop='[matrix.baseline]\nturns = 2\nmax_response_tokens = 96\ntool_mode = "constrained"\n',
    )
    result = pytester.runpytest("--agent-model=embedded:smollm2-135m", "--agent-json=r.json")
    [attempt] = json.loads((pytester.path / "r.json").read_text())["attempts"]
    assert attempt["outcome"] not in ("infra_error", None), attempt["reason"]
    assert attempt["turns"] >= 1
    assert attempt["prompt_tokens"] > 0 and attempt["completion_tokens"] > 0
    info = attempt["model_info"]
    assert info.get("quantization") and info.get("sha256"), info
    assert "Traceback" not in result.stdout.str()
