"""Finding cards: one Markdown page per model that a person can act on without reading raw results.

The card follows the methodology's order: where it ran, how the baseline and the best cell did per
tier, why it failed (ceilings, wasted turns, dead ends), what a pass costs, and the decision.
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pytest_agentloop.analysis.cost import Price, cost_rows
from pytest_agentloop.analysis.diagnosis import waste_profiles
from pytest_agentloop.analysis.verdicts import below_minimum, best_cell, comparisons, decide, tier_rollups
from pytest_agentloop.cells import BASELINE
from pytest_agentloop.records import Attempt
from pytest_agentloop.report.said_once import said_once
from pytest_agentloop.report.stack import stack_rows
from pytest_agentloop.telemetry import serving_lines

TIER_HEADER = ("cell", "tier", "pass/N", "pass^3")
WASTE_HEADER = ("cell", "turns", "malformed", "redundant", "no-op edits", "prose")
# The pytest_agentloop_card hook as a callable: (model, the card's lines to edit in place, its attempts).
Amend = Callable[[str, list[str], list[Attempt]], None]


def host_fingerprint() -> dict[str, str]:
    """The machine the harness ran on, named as such: with remote hosts the model ran elsewhere, and
    its host is the card's `host_name` and `guard` lines (what the guard measured there)."""
    import psutil

    from pytest_agentloop.memory import available_memory, fmt_bytes

    gpu = available_memory()
    return {
        "harness cpu": f"{os.cpu_count()} cores ({platform.machine()}, {platform.system()})",
        "harness ram": fmt_bytes(psutil.virtual_memory().total),
        "harness gpu": gpu.device if gpu.kind == "nvidia" else "none visible",
    }


def model_fingerprint(attempts: Iterable[Attempt]) -> dict[str, Any]:
    """Runtime, version, digest, quantization, context: the plain facts the backend recorded last."""
    from pytest_agentloop.memory import fmt_bytes

    info = next((a.model_info for a in reversed(list(attempts)) if a.model_info), {})
    return {
        key: fmt_bytes(value) if key.endswith("_bytes") and isinstance(value, int) else value
        for key, value in info.items()
        if isinstance(value, str | int | float) and value != ""
    }


def render_card(
    model: str, attempts: Iterable[Attempt], fingerprint: Mapping[str, Any], prices: Mapping[str, Price]
) -> str:
    """The Markdown card for one model; attempts of other models are ignored."""
    own = [a for a in attempts if a.model == model]
    best = best_cell(own)
    (decision,) = decide(own, prices)
    facts = [f"- {key}: {value}" for key, value in sorted({**model_fingerprint(own), **fingerprint}.items())]
    warning = below_minimum(own)
    tiers = [
        f"| {r.cell} | {r.tier} | {r.describe()} | "
        + ("n/a" if r.pass_hat_3 is None else f"{r.pass_hat_3:.0%}")
        + " |"
        for r in tier_rollups(a for a in own if a.cell in {BASELINE.id, best})
    ]
    ceilings = [f"- {said.where}: {said.text}" for said in said_once(own, ceilings_only=True)]
    profiles = waste_profiles(own)
    waste = [
        f"| {p.cell} | {p.turns} | "
        + " | ".join(p.share(count) for count in (p.malformed, p.redundant, p.noop_edits, p.prose))
        + " |"
        for p in profiles
    ]
    return (
        "\n".join(
            [
                f"# {model}",
                "",
                f"**Decision:** {decision.text}",
                *(["", f"**Note:** {warning}"] if warning else []),
                *_section("Where it ran", facts, "no fingerprint recorded"),
                *_section("Serving stack", stack_rows(own)),
                *_section("Pass/N per tier (95% Wilson interval)", tiers, "no attempts", TIER_HEADER),
                *_section("Cells against the baseline", [f"- {c.text}" for c in comparisons(own).values()]),
                *_section("Ceilings", ceilings, "none hit"),
                *_section("Wasted turns (share of all turns)", waste, header=WASTE_HEADER),
                *_section(
                    "Dead ends and runtime problems",
                    [f"- {p.cell}: {note}" for p in profiles for note in p.findings],
                    "none found",
                ),
                *_section("Cost per pass", [f"- {row.describe()}" for row in cost_rows(own, prices)]),
                *_section("Serving", [f"- {line}" for line in serving_lines(own)], "not measured"),
            ]
        )
        + "\n"
    )


def _section(
    title: str, rows: list[str], empty: str = "nothing to show", header: tuple[str, ...] = ()
) -> list[str]:
    """A titled block; table rows get their header, an empty block says so instead of vanishing."""
    if rows and header:
        rows = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|", *rows]
    return ["", f"## {title}", "", *(rows or [f"- {empty}"])]


def write_cards(
    directory: Path,
    attempts: Iterable[Attempt],
    fingerprint: Mapping[str, Any],
    prices: Mapping[str, Price],
    amend: Amend | None = None,
) -> list[Path]:
    """One card per model, named after its spec made file-safe (`ollama_qwen3_30b.md`).

    `amend` (the plugin passes the `pytest_agentloop_card` hook) may edit each card's lines first.
    """
    attempts = list(attempts)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for model in sorted({a.model for a in attempts}):
        path = directory / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', model)}.md"
        lines = render_card(model, attempts, fingerprint, prices).splitlines()
        if amend is not None:
            amend(model, lines, [a for a in attempts if a.model == model])
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        written.append(path)
    return written
