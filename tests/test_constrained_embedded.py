"""tool_mode=constrained rescues a model whose runtime cannot do native tools, and the card says so.

The REAL embedded model (SmolLM2-135M through xllamacpp): its chat template does not render
`tools`, so in native mode it answers in prose and makes no tool call; constrained decoding (tool
schemas in the prompt, JSON-schema constrained replies) makes it call tools. Kept tiny because the
model runs at ~100 tokens/s on one idle core: one canary, 3 turns, one repetition. Replies get 192
tokens (the demo config's figure): at 96, a rambling commit message was cut off mid-JSON in both of
2 turns, so the constrained cell counted 2 malformed calls and no valid one.
"""

from __future__ import annotations

import json

import pytest

from tests._runs import run
from tests.support.tiny_canary import write_tiny_canary

CONFIG = """
models = ["embedded:smollm2-135m"]
smoke = false

[embedded]
context = 4096

[matrix.baseline]
max_response_tokens = 192

[matrix.factors]
tool_mode = ["constrained"]
"""


def test_constrained_calls_tools_where_native_is_a_dead_end(pytester: pytest.Pytester) -> None:
    write_tiny_canary(pytester.path / "canaries" / "tiny", turns=3)
    pytester.makefile(".toml", agentloop=CONFIG)
    result = run(pytester, "--agent-json=r.json", "--agent-cards=cards", timeout=900)
    attempts = {a["cell"]: a for a in json.loads((pytester.path / "r.json").read_text())["attempts"]}
    assert attempts["baseline"]["tool_calls"] == 0, attempts["baseline"]
    assert attempts["tool_mode=constrained"]["tool_calls"] >= 1, attempts["tool_mode=constrained"]
    card = (pytester.path / "cards" / "embedded_smollm2-135m.md").read_text()
    assert "- baseline: dead end: zero tool calls in native mode over 1 attempt;" in card
    assert "tool_mode=constrained: dead end" not in card
    assert "- quantization: " in card and "- sha256: " in card  # the runtime fingerprint
    assert "below the methodology's minimum of N=3 (N=1)" in card
    assert "Traceback" not in result.stdout.str()
