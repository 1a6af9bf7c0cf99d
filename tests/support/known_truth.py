"""Scripted models of known truth for the verdict tests: each solves a real canary by replaying its
solution (write the solution files, run the tests, commit, push, finish) exactly when its condition
holds, so the right diagnosis, combined cell, comparison and decision are known by construction.

They register into the scripted server's behaviours (tests/support/scripted_server.py), so
`ScriptedServer("turn_bound", edits=...)` serves them like any other.

- turn_bound: lists files for WASTED_TURNS turns first, then solves: only a larger turn budget helps.
- token_bound: solves in five turns but spends TOKENS_PER_TURN more completion tokens on each reply
  (long thinking): only a larger token budget helps.
- incapable: reads the same file forever: no budget helps (a capability ceiling).
- coin_flip: solves or quits at once, by a seeded coin tossed at each conversation's first request:
  50%, and no setting changes it.
- temperature_sensitive: solves when the request's temperature is at most 0.3, else quits.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tests.support.scripted_server import Reply, ScriptedServer, behaviour, native, own_turns, solve_steps

WASTED_TURNS = 6
TOKENS_PER_TURN = 9_000
COLD = 0.3
_COINS: dict[int, tuple[random.Random, list[bool]]] = {}  # id(server) -> its coin and the current toss


def solution_edits(canary_root: Path) -> list[tuple[str, str]]:
    """A canary's solution as (path, content) writes: the correct calls a capable model makes."""
    solution = canary_root / "solution"
    return [(str(p.relative_to(solution)), p.read_text()) for p in sorted(solution.rglob("*")) if p.is_file()]


def _solve_from(server: ScriptedServer, body: dict[str, Any], start: int) -> Reply:
    steps = solve_steps(server.edits)
    turn = own_turns(body)
    return native(steps[min(turn - start, len(steps) - 1)], turn=turn)


def _quit(body: dict[str, Any]) -> Reply:
    return native(("finish", {"summary": "Nothing to change."}), turn=own_turns(body))


@behaviour("turn_bound")
def _turn_bound(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    if own_turns(body) < WASTED_TURNS:
        return native(("list_files", {}), turn=own_turns(body))
    return _solve_from(server, body, WASTED_TURNS)


@behaviour("token_bound")
def _token_bound(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    return {**_solve_from(server, body, 0), "thinking_tokens": TOKENS_PER_TURN}


@behaviour("incapable")
def _incapable(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    path = server.edits[0][0] if server.edits else "README.md"
    return native(("read_file", {"path": path}), turn=own_turns(body))


def seed_coin(server: ScriptedServer, seed: int) -> None:
    _COINS[id(server)] = (random.Random(seed), [False])


@behaviour("coin_flip")
def _coin_flip(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    coin, toss = _COINS.setdefault(id(server), (random.Random(0), [False]))
    if own_turns(body) == 0:  # attempts run one after another: a new conversation tosses again
        toss[0] = coin.random() < 0.5
    return _solve_from(server, body, 0) if toss[0] else _quit(body)


@behaviour("temperature_sensitive")
def _temperature_sensitive(server: ScriptedServer, body: dict[str, Any]) -> Reply:
    temperature = body.get("temperature")
    if temperature is not None and temperature <= COLD:
        return _solve_from(server, body, 0)
    return _quit(body)
