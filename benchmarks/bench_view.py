"""`agentloop view` on 10,000 synthetic attempts: the file's size, the time to build it, and the time
headless Chromium takes to open it (navigation start to the end of the page's first render).

The attempts are made up but shaped like real ones: 50 canaries x 4 models x 5 cells x 10
repetitions, each with a four-turn transcript (calls with arguments, results, a malformed call, a
diff and the hidden checks' output), so the transcripts weigh what a short real run's do.

Run from the repository root: `python -m benchmarks.bench_view [--attempts 10000] [--keep PATH]`.
Needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver) and selenium.
"""

from __future__ import annotations

import argparse
import itertools
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from pytest_agentloop.records import (
    Attempt,
    Limit,
    MalformedCall,
    Outcome,
    ToolCall,
    ToolResult,
    Transcript,
    Turn,
    Usage,
)
from pytest_agentloop.report.view import write_view
from tests.support.browser import chromium, missing, open_page

OUTCOMES = (
    Outcome.PASSED,
    Outcome.FAILED,
    Outcome.BUDGET_EXCEEDED,
    Outcome.NO_TOOL_CALLS,
    Outcome.INFRA_ERROR,
)


def _turn(rng: random.Random, index: int, chars: int, tokens: tuple[int, int], **parts: Any) -> Turn:
    """Turn `index` of a growing history (two messages a turn): `chars` sent, `tokens` used."""
    return Turn(
        index=index,
        request_messages=2 * index + 2,
        request_chars=chars,
        usage=Usage(prompt_tokens=tokens[0], completion_tokens=tokens[1]),
        latency_s=rng.uniform(0.5, 4),
        **parts,
    )


def transcript(rng: random.Random, canary: str) -> Transcript:
    code = "\n".join(f"def f{i}(x):\n    return x + {i}" for i in range(8))
    edit = {"path": "src/app.py", "old": "+ 1", "new": "+ 2"}
    failed = "`pytest -q` failed (exit code 1)\n" + "F" * 40
    turns = [
        _turn(
            rng,
            0,
            1800,
            (900, 40),
            content="Let me look at the repository first.",
            calls=[ToolCall(id="c0", name="read_file", arguments={"path": "src/app.py"})],
            results=[ToolResult(call_id="c0", name="read_file", ok=True, output=code)],
        ),
        _turn(
            rng,
            1,
            2400,
            (1100, 60),
            malformed=[
                MalformedCall(kind="bad_json", raw='{"name": "edit_file", "arguments": {', error="truncated")
            ],
        ),
        _turn(
            rng,
            2,
            2900,
            (1300, 50),
            calls=[ToolCall(id="c2", name="edit_file", arguments=edit)],
            results=[
                ToolResult(
                    call_id="c2", name="edit_file", ok=True, output="edited 'src/app.py'.", changed=True
                )
            ],
        ),
        _turn(
            rng,
            3,
            3300,
            (1500, 30),
            calls=[ToolCall(id="c3", name="run_tests", arguments={})],
            results=[ToolResult(call_id="c3", name="run_tests", ok=True, output=failed)],
        ),
    ]
    return Transcript(
        spec=f"# {canary}\nFix the off-by-one in src/app.py; keep the tests green.",
        system_prompt="You are a coding agent. " * 40,
        turns=turns,
        final_diff="--- a/src/app.py\n+++ b/src/app.py\n@@ -1 +1 @@\n-    return x + 1\n+    return x + 2",
        check_output="1 failed, 3 passed in 0.12s",
    )


def attempts(count: int) -> list[Attempt]:
    rng = random.Random(7)
    canaries = [f"canary-{i:02d}" for i in range(50)]
    models = ["ollama:qwen3:30b", "ollama:gpt-oss:20b", "lmstudio:devstral", "embedded:smollm2-135m"]
    cells = ["baseline", "temperature=0.7", "turns=x2", "tokens=x2", "tool_mode=prompted"]
    made = []
    for canary, model, cell, rep in itertools.product(canaries, models, cells, range(1, 11)):
        if len(made) == count:
            break
        outcome = rng.choice(OUTCOMES)
        made.append(
            Attempt(
                canary=canary,
                tier=("lite", "medium", "heavy")[int(canary[-2:]) % 3],
                model=model,
                cell=cell,
                repetition=rep,
                outcome=outcome,
                limit=Limit.TURNS if outcome is Outcome.BUDGET_EXCEEDED else None,
                reason="synthetic",
                turns=4,
                tool_calls=3,
                malformed_tool_calls=1,
                prompt_tokens=4800,
                completion_tokens=180,
                wall_s=rng.uniform(5, 60),
                checks_passed=3,
                checks_total=4,
                cell_config={"tool_mode": "native"},
                transcript=transcript(rng, canary),
            )
        )
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="write the page here instead of a temporary file")
    args = parser.parse_args()
    made = attempts(args.attempts)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "view.html"
        started = time.perf_counter()
        write_view(path, made, {}, f"{len(made)} synthetic attempts")
        built = time.perf_counter() - started
        print(f"attempts:   {len(made)}")
        print(f"file size:  {path.stat().st_size / 1e6:.1f} MB")
        print(f"build time: {built:.1f} s (python, agentloop view)")
        why = missing()
        if why:
            print(f"load time:  not measured: {why}")
            return
        with chromium() as driver:
            loads = [open_page(driver, path) for _ in range(3)]
        each = ", ".join(f"{x:.2f}" for x in loads)
        print(f"load time:  {min(loads):.2f} s best of 3 in headless Chromium ({each})")


if __name__ == "__main__":
    main()
