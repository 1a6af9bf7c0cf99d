"""Fuzz the reply parsers and the full loop; print crashes / total (the target is 0 of each).

Parsers: at least 10,000 hypothesis-drawn response bodies (tests/support/fuzz_bodies.py) through
the OpenAI-compatible reader, Ollama's native reader, and the text and native call parsers. A crash
is any exception other than the harness's own InfraError, or a reply that cannot be recorded as a
transcript turn in UTF-8 JSON. Full loop: attempts against a loopback server answering fuzzed
bodies; an attempt is lost if it raises or ends without an outcome and a reason.

Run from the repository root: `PYTHONPATH=. python benchmarks/bench_fuzz.py [--bodies N] [--attempts N]`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_agentloop.backends.base import ChatResponse, clean_json
from pytest_agentloop.records import Outcome
from tests.support.fuzz_bodies import completion, ollama_reply, raw_bodies, texts
from tests.test_fuzz_loop import fuzz_attempts
from tests.test_fuzz_replies import OLLAMA, OPENAI, read, record

Check = Callable[[Any], None]


def fuzz(
    name: str, strategy: st.SearchStrategy[Any], check: Callable[[Any], None], count: int
) -> tuple[int, int]:
    """Run `check` on `count` drawn examples; return (crashes, total) and print the first crashes."""
    seen = Counter[str]()
    total = [0]

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def run(example: Any) -> None:
        total[0] += 1
        try:
            check(example)
        except Exception as exc:  # counted, not raised: the benchmark reports every kind
            seen[f"{type(exc).__name__}: {str(exc)[:120]}"] += 1

    run()
    crashes = sum(seen.values())
    print(f"  {name:<28} {crashes:>5} crashes / {total[0]:>6} bodies")
    for kind, times in seen.most_common(3):
        print(f"      {times} x {kind}")
    return crashes, total[0]


def text_calls(content: str) -> None:
    record(ChatResponse(content=clean_json(content), finish_reason="stop"))
    record(ChatResponse(content=clean_json(content), finish_reason="length"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=10_000, help="bodies in all (split over the parsers)")
    parser.add_argument("--attempts", type=int, default=100, help="full-loop attempts (0: skip)")
    options = parser.parse_args()
    share = max(options.bodies // 4, 1)
    started = time.perf_counter()
    print("reply parsers (hypothesis):")
    figures = [
        fuzz("openai /chat/completions", raw_bodies(completion), lambda raw: read(OPENAI, raw), share * 2),
        fuzz("ollama /api/chat", raw_bodies(ollama_reply), lambda raw: read(OLLAMA, raw), share),
        fuzz("text tool calls", st.lists(texts, max_size=12).map("".join), text_calls, share),
    ]
    crashes, total = (sum(column) for column in zip(*figures, strict=True))
    print(f"parsers: {crashes} crashes / {total} bodies in {time.perf_counter() - started:.0f}s")
    if options.attempts:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as scratch:
            try:
                records = fuzz_attempts(options.attempts, seed=16, tmp_path=Path(scratch))
                lost = options.attempts - sum(
                    1 for a in records if isinstance(a.outcome, Outcome) and a.reason.strip()
                )
            except Exception as exc:
                print(f"full loop raised: {type(exc).__name__}: {exc}")
                records, lost = [], options.attempts
        outcomes = ", ".join(f"{n} {o.value}" for o, n in Counter(a.outcome for a in records).most_common())
        print(
            f"full loop: {lost} lost / {options.attempts} attempts in {time.perf_counter() - started:.0f}s "
            f"({outcomes})"
        )


if __name__ == "__main__":
    main()
