"""Response bodies of every shape a chat server might send, for fuzzing the reply parsers.

Two sources share one idea of "hostile": hypothesis strategies (`raw_bodies`, for the parser fuzz
tests and benchmarks/bench_fuzz.py, which shrink a crash to its smallest body) and a seeded
generator (`random_body`, for the full-loop fuzz, where the scripted server draws a body per
request). Both mix plausible replies (valid calls, content as a list of parts) with the faults the
issue found: wrong types for usage, finish_reason and tool_calls, huge integers, deep nesting,
lone surrogates, non-JSON, truncated JSON, HTML error pages, empty choices, errors inside a 200.
"""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import strategies as st

from tests.support.scripted_server import Reply, ScriptedServer

HTML_PAGE = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    b"</center><hr><center>nginx</center></body></html>"
)
TOOL_NAMES = ("read_file", "write_file", "list_files", "run_tests", "commit", "push", "finish", "escalate")
HUGE = 10**40

# -- hypothesis ------------------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(codec=None), max_size=40) | st.sampled_from(
    ["\ud800", "a\udfffb", "<tool_call>", '{"name": "finish"', "```json\n", ""]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-HUGE, max_value=HUGE)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """The field as it should be, or any JSON value at all, or left out (st.just(...) marks absence)."""
    return strategy | json_values | st.just(...)


arguments = st.dictionaries(st.sampled_from(["path", "content", "message", "summary", "reason"]), texts)
tool_call = st.fixed_dictionaries(
    {},
    optional={
        "id": _maybe(texts),
        "type": _maybe(st.just("function")),
        "function": _maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": _maybe(st.sampled_from(TOOL_NAMES)),
                    "arguments": _maybe(arguments.map(json.dumps) | arguments),
                },
            )
        ),
    },
)
content_parts = st.lists(
    st.fixed_dictionaries({"type": st.just("text"), "text": _maybe(texts)}) | texts | json_values, max_size=4
)
message = st.fixed_dictionaries(
    {},
    optional={
        "role": _maybe(st.just("assistant")),
        "content": _maybe(texts | content_parts),
        "reasoning_content": _maybe(texts | content_parts),
        "tool_calls": _maybe(st.lists(tool_call | json_values, max_size=3)),
    },
)
counts = st.integers(min_value=-HUGE, max_value=HUGE) | st.integers(min_value=0, max_value=10**6)
usage = st.fixed_dictionaries(
    {},
    optional={
        "prompt_tokens": _maybe(counts),
        "completion_tokens": _maybe(counts),
        "prompt_tokens_details": _maybe(st.fixed_dictionaries({"cached_tokens": _maybe(counts)})),
    },
)
timings = st.fixed_dictionaries(
    {},
    optional={
        key: _maybe(counts | st.floats(allow_nan=True, allow_infinity=True))
        for key in ("prompt_n", "prompt_ms", "predicted_n", "predicted_ms", "cache_n")
    },
)
choice = st.fixed_dictionaries(
    {},
    optional={
        "index": _maybe(st.just(0)),
        "message": _maybe(message),
        "finish_reason": _maybe(st.sampled_from(["stop", "length", "tool_calls"])),
    },
)
completion = st.fixed_dictionaries(
    {},
    optional={
        "id": _maybe(texts),
        "choices": _maybe(st.lists(choice | json_values, max_size=2)),
        "usage": _maybe(usage),
        "timings": _maybe(timings),
        "system_fingerprint": _maybe(texts),
        "error": _maybe(st.fixed_dictionaries({"message": _maybe(texts)})),
    },
)
ollama_reply = st.fixed_dictionaries(
    {},
    optional={
        "message": _maybe(message),
        "done_reason": _maybe(st.sampled_from(["stop", "length"])),
        **{
            key: _maybe(counts)
            for key in ("prompt_eval_count", "eval_count", "prompt_eval_duration", "eval_duration")
        },
    },
)


def _drop_absent(value: Any) -> Any:
    """Remove the fields `_maybe` marked absent (st.just(...)), at any depth."""
    if isinstance(value, dict):
        return {k: _drop_absent(v) for k, v in value.items() if v is not ...}
    if isinstance(value, list):
        return [_drop_absent(v) for v in value if v is not ...]
    return value


def encode(value: Any) -> bytes:
    """JSON as a server might write it: lone surrogates as escapes, NaN and Infinity as Python does."""
    return json.dumps(value).encode()


@st.composite
def raw_bodies(draw: st.DrawFn, shape: st.SearchStrategy[Any] = completion) -> bytes:
    """A body: a (mostly) well-formed reply of `shape`, or one mangled on the way."""
    body = encode(_drop_absent(draw(shape)))
    kind = draw(st.sampled_from(["json"] * 6 + ["cut", "html", "deep", "huge", "bytes", "bare", "empty"]))
    if kind == "cut":  # the connection dropped mid-body
        return body[: draw(st.integers(min_value=0, max_value=max(len(body) - 1, 0)))]
    if kind == "html":
        return HTML_PAGE
    if kind == "deep":  # nested past any parser's recursion limit
        depth = draw(st.integers(min_value=50, max_value=100_000))
        return b'{"choices": [{"message": {"content": ' + b"[" * depth + b"]" * depth + b"}}]}"
    if kind == "huge":
        digits = b"1" + b"9" * draw(st.integers(min_value=20, max_value=6000))
        return b'{"choices": [{"message": {"content": "x"}}], "usage": {"prompt_tokens": ' + digits + b"}}"
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "bare":
        return encode(draw(json_values))
    if kind == "empty":
        return b""
    return body


# -- seeded, for the full loop ---------------------------------------------------------------------


WRONG_ARGUMENTS: list[Any] = [None, 7, ["a"], "{not json", HUGE, {"path": "\ud800"}]
CONTENTS: list[Any] = [
    "",
    None,
    "thinking about it",
    [
        {"type": "text", "text": '<tool_call>{"name": "list_files", "arguments": {}}'},
        {"type": "text", "text": "</tool_call>"},
    ],
    '```json\n{"name": "run_tests", "arguments": {}}\n```',
    "\ud800 lone",
]
USAGES: list[Any] = [
    {"prompt_tokens": 100, "completion_tokens": 20},
    {"prompt_tokens": HUGE, "completion_tokens": "7"},
    {"prompt_tokens": -3},
    "none",
    None,
]
CHOICES: list[Any] = [[], None, "x", [None], [{"message": None}]]


def _call(rng: random.Random, turn: int) -> dict[str, Any]:
    args = {"path": "calc.py", "content": "x = 1\n", "message": "m", "summary": "s", "reason": "r"}
    args = {k: v for k, v in args.items() if rng.random() < 0.5}
    arguments = json.dumps(args) if rng.random() < 0.6 else rng.choice([args, *WRONG_ARGUMENTS])
    function = {"name": rng.choice(TOOL_NAMES), "arguments": arguments}
    return {"id": rng.choice([f"c{turn}", "", None, 5]), "type": "function", "function": function}


def _junk(rng: random.Random, depth: int = 0) -> Any:
    leaves: list[Any] = [None, True, HUGE, -1.5e308, "\udc00junk"]
    if depth < 3:
        leaves += [[_junk(rng, depth + 1)], {"k": _junk(rng, depth + 1)}, []]
    return rng.choice(leaves)


def _timings(rng: random.Random) -> dict[str, Any]:
    return {
        "prompt_n": rng.choice([10, HUGE, "x"]),
        "prompt_ms": rng.choice([5.0, float("inf"), None]),
        "predicted_n": 20,
        "predicted_ms": rng.choice([100.0, -1, HUGE]),
    }


def random_body(rng: random.Random, turn: int) -> Reply:
    """One reply for the scripted server: status, headers and raw bytes, seeded by `rng`."""
    roll = rng.random()
    if roll < 0.03:
        return {"status": 200, "raw": HTML_PAGE}
    if roll < 0.06:
        return {"status": rng.choice([500, 502, 503, 429]), "raw": HTML_PAGE, "headers": {"Retry-After": "0"}}
    if roll < 0.09:
        depth = rng.choice([70, 5000, 200_000])
        return {"raw": b'{"choices": [{"message": {"content": ' + b"[" * depth + b"]" * depth + b"}}]}"}
    message: dict[str, Any] = {"role": "assistant", "content": rng.choice([*CONTENTS, _junk(rng)])}
    if rng.random() < 0.7:
        message["tool_calls"] = [_call(rng, turn) for _ in range(rng.randrange(3))]
    finish = rng.choice(["stop", "length", None, 3, ["x"]])
    body: dict[str, Any] = {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}
    if rng.random() < 0.7:
        body["usage"] = rng.choice(USAGES)
    if rng.random() < 0.3:
        body["timings"] = _timings(rng)
    if rng.random() < 0.04:
        body["choices"] = rng.choice(CHOICES)
    raw = json.dumps(body).encode()
    if rng.random() < 0.04:
        raw = raw[: rng.randrange(len(raw))]
    return {"raw": raw}


def fuzz_behaviour(seed: int) -> Any:
    """A `ScriptedServer(fuzz=...)` callable drawing every reply from one seeded generator."""
    rng = random.Random(seed)

    def reply(server: ScriptedServer, body: dict[str, Any]) -> Reply:
        return random_body(rng, server.request_count)

    return reply
