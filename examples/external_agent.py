"""A small external agent that shows the command-line contract end to end (docs/extending.md).

It is a *replay* agent, not a smart one: told where the canaries live (`--solutions DIR`), it
looks up the canary it was given (`$AGENTLOOP_CANARY`) and copies that canary's `solution/` over
the work tree, runs the tests, commits and pushes, like the `reference` pseudo-model does, but
from the outside, through the same contract your own agent would use. When a model is configured
(`$AGENTLOOP_MODEL_URL`), it first asks the model to restate the task in one sentence, so the
transcript carries real token counts. It writes one JSON line per turn to `$AGENTLOOP_TRANSCRIPT`
unless `--no-transcript` is given (the harness then records turns and tokens as null).

    [agents.replay]
    command = "python $AGENTLOOP_ROOT/examples/external_agent.py --solutions $AGENTLOOP_ROOT/canaries"

Standard library only: it runs in the sandbox's scrubbed environment with the harness's Python.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solutions", type=Path, required=True, help="folder holding the canaries")
    parser.add_argument("--no-transcript", action="store_true", help="write no transcript")
    args = parser.parse_args()
    spec = sys.stdin.read()
    turns: list[dict[str, Any]] = []
    if os.environ.get("AGENTLOOP_MODEL_URL"):
        turns.append(ask_model(spec))
    solution = find_solution(args.solutions, os.environ["AGENTLOOP_CANARY"])
    if solution is None:
        print(f"no canary {os.environ['AGENTLOOP_CANARY']!r} with a solution/ under {args.solutions}")
        return 1
    turns.append(
        turn(
            "write the solution",
            [write(path, solution) for path in sorted(solution.rglob("*")) if path.is_file()],
        )
    )
    tests = subprocess.run(os.environ["AGENTLOOP_TEST_COMMAND"], shell=True, capture_output=True, text=True)
    turns.append(turn("run the tests", [call("run_tests", {}, tests.returncode == 0, tests.stdout[-2000:])]))
    steps = [
        ("commit", ["git", "commit", "-qam", "Apply the solution"]),
        ("push", ["git", "push", "-q", "origin", "HEAD:main"]),
    ]
    subprocess.run(["git", "add", "-A"], check=True)
    done = [call(name, {}, subprocess.run(argv).returncode == 0) for name, argv in steps]
    turns.append(turn("commit and push", done))
    if not args.no_transcript:
        with open(os.environ["AGENTLOOP_TRANSCRIPT"], "w", encoding="utf-8") as out:
            out.writelines(json.dumps(line) + "\n" for line in turns)
    print(
        f"replayed {solution.parent.name}: tests exit {tests.returncode}, pushed {all(c['ok'] for c in done)}"
    )
    return 0


def find_solution(root: Path, canary_id: str) -> Path | None:
    for toml in root.rglob("canary.toml"):
        if tomllib.loads(toml.read_text(encoding="utf-8")).get("id") == canary_id:
            solution = toml.parent / "solution"
            return solution if solution.is_dir() else None
    return None


def write(path: Path, solution: Path) -> dict[str, Any]:
    relative = path.relative_to(solution)
    relative.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, relative)
    return call("write_file", {"path": relative.as_posix()}, True)


def ask_model(spec: str) -> dict[str, Any]:
    """One real chat request, so the transcript's usage is the model's own count."""
    body = {
        "model": os.environ.get("AGENTLOOP_MODEL", ""),
        "messages": [{"role": "user", "content": f"Restate this task in one sentence:\n{spec}"}],
        "max_tokens": min(64, int(os.environ.get("AGENTLOOP_MAX_RESPONSE_TOKENS", "64"))),
        "temperature": 0,
    }
    request = urllib.request.Request(
        os.environ["AGENTLOOP_MODEL_URL"].rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    start = time.monotonic()
    with urllib.request.urlopen(request, timeout=60) as response:
        reply = json.load(response)
    usage = reply.get("usage", {})
    return {
        "content": reply["choices"][0]["message"].get("content") or "",
        "tool_calls": [],
        "usage": {
            "prompt_tokens": usage.get("prompt_tokens", 0),
            "completion_tokens": usage.get("completion_tokens", 0),
        },
        "latency_s": round(time.monotonic() - start, 3),
    }


def turn(content: str, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """A turn in which no model was asked: its usage is truly zero."""
    return {"content": content, "tool_calls": calls, "usage": {"prompt_tokens": 0, "completion_tokens": 0}}


def call(name: str, arguments: dict[str, Any], ok: bool, output: str = "") -> dict[str, Any]:
    return {"name": name, "arguments": arguments, "ok": ok, "output": output}


if __name__ == "__main__":
    sys.exit(main())
