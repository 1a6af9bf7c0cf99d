"""The report's two charts, drawn by matplotlib into inline SVG (no files, no pyplot global state).

Horizontal bars, one row per model × cell, so 5 models × 8 cells stays readable: labels never
overlap, the figure just grows taller.
"""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Sequence

from matplotlib.figure import Figure

from pytest_agentloop.analysis.diagnosis import WasteProfile
from pytest_agentloop.analysis.verdicts import Rollup

ROW_INCHES = 0.32
WIDTH_INCHES = 9.0
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d")
WASTE_KINDS = (
    ("malformed", "#e45756"),
    ("redundant", "#f58518"),
    ("noop_edits", "#eeca3b"),
    ("prose", "#b279a2"),
)


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog: the SVG goes inline into HTML


def pass_rate_chart(rollups: Sequence[Rollup]) -> str:
    """Pass rate per model × cell with its 95% Wilson interval as error bars; colour = model."""
    ordered = sorted(rollups, key=lambda r: (r.model, r.cell))
    figure = Figure(figsize=(WIDTH_INCHES, 1.2 + ROW_INCHES * max(len(ordered), 1)))
    axes = figure.add_subplot()
    models = sorted({r.model for r in ordered})
    colours = {model: PALETTE[i % len(PALETTE)] for i, model in enumerate(models)}
    positions = range(len(ordered))
    rates = [r.pass_rate for r in ordered]
    errors = [[r.pass_rate - r.ci_low for r in ordered], [r.ci_high - r.pass_rate for r in ordered]]
    axes.barh(positions, rates, color=[colours[r.model] for r in ordered], height=0.6)
    axes.errorbar(rates, positions, xerr=errors, fmt="none", ecolor="#222", capsize=3, linewidth=1)
    for y, rollup in zip(positions, ordered, strict=True):
        axes.text(1.02, y, f"{rollup.passes}/{rollup.n}", va="center", fontsize=8)
    axes.set_yticks(list(positions), [f"{r.model} · {r.cell}" for r in ordered], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlim(0, 1.12)
    axes.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    axes.set_xlabel("pass rate (bars: 95% Wilson interval; infra errors excluded)")
    axes.set_title("Pass rate per model × cell", loc="left", fontsize=11)
    axes.grid(axis="x", alpha=0.3)
    return _svg(figure)


def waste_chart(profiles: Sequence[WasteProfile]) -> str:
    """Share of each model's turns that were wasted, by kind (all cells together)."""
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for profile in profiles:
        own = totals[profile.model]
        own["turns"] += profile.turns
        for kind, _ in WASTE_KINDS:
            own[kind] += getattr(profile, kind) or 0
    models = sorted(totals)
    figure = Figure(figsize=(WIDTH_INCHES, 1.7 + ROW_INCHES * max(len(models), 1)), layout="constrained")
    axes = figure.add_subplot()
    left = [0.0] * len(models)
    for kind, colour in WASTE_KINDS:
        shares = [totals[m][kind] / totals[m]["turns"] if totals[m]["turns"] else 0.0 for m in models]
        axes.barh(models, shares, left=left, color=colour, height=0.6, label=kind.replace("_", " "))
        left = [a + b for a, b in zip(left, shares, strict=True)]
    for y, model in enumerate(models):
        axes.text(
            left[y] + 0.01, y, f"{left[y]:.0%} of {totals[model]['turns']} turns", va="center", fontsize=8
        )
    axes.invert_yaxis()
    axes.set_xlim(0, 1.25)
    axes.set_xticks([0, 0.25, 0.5, 0.75, 1.0], ["0%", "25%", "50%", "75%", "100%"])
    axes.set_xlabel("share of turns wasted")
    axes.set_title("Wasted-turn profile per model", loc="left", fontsize=11)
    # Below the axes, never over a bar: one model's row fills the whole plot height.
    figure.legend(loc="outside lower left", fontsize=8, frameon=False, ncols=len(WASTE_KINDS))
    axes.grid(axis="x", alpha=0.3)
    return _svg(figure)
