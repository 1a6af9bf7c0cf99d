"""The verdict at the end of the terminal output: one row per model × cell × canary."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_agentloop.records import Attempt

COLUMNS = (
    ("model", "<"),
    ("cell", "<"),
    ("canary", "<"),
    ("pass/N", ">"),
    ("95% CI", "<"),
    ("pass^3", ">"),
    ("turns✓", ">"),
    ("checks", ">"),
    ("malformed/att", ">"),
    ("redundant/att", ">"),
    ("text/att", ">"),
    ("over budget t/k/s", "<"),
    ("infra", ">"),
)


def _row(summary: Any) -> tuple[str, ...]:
    by_limit = summary.budget_exceeded_by_limit
    turns = "-" if summary.mean_turns_to_pass is None else f"{summary.mean_turns_to_pass:.1f}"
    checks = "-" if summary.partial_credit is None else f"{summary.partial_credit:.0%}"
    return (
        summary.model,
        summary.cell,
        summary.canary,
        f"{summary.passes}/{summary.n}",
        f"[{summary.ci_low:.2f}, {summary.ci_high:.2f}]",
        "-" if summary.pass_hat_3 is None else f"{summary.pass_hat_3:.0%}",
        turns,
        checks,
        _per_attempt(summary.malformed_per_attempt),
        _per_attempt(summary.redundant_per_attempt),
        _per_attempt(summary.text_calls_per_attempt),
        "/".join(str(by_limit.get(limit, 0)) for limit in ("turns", "tokens", "time")),
        str(summary.infra_errors),
    )


def _per_attempt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def format_table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    headers = tuple(name for name, _ in COLUMNS)
    widths = [max(len(cells[i]) for cells in (headers, *rows)) for i in range(len(headers))]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            f"{cell:{align}{width}}" for cell, (_, align), width in zip(cells, COLUMNS, widths, strict=True)
        ).rstrip()

    return [line(headers), *(line(cells) for cells in rows)]


def write_summary(terminalreporter: Any, attempts: Sequence[Attempt], results_path: Path | None) -> None:
    """The table, the repetitions note, the diagnoses, and where the results file went."""
    from pytest_agentloop.analysis.verdicts import below_minimum, summarize
    from pytest_agentloop.report.said_once import said_once
    from pytest_agentloop.report.stack import guard_notes
    from pytest_agentloop.telemetry import serving_lines

    summaries = summarize(attempts)
    terminalreporter.write_sep("=", "agentloop summary")
    for text in format_table([_row(summary) for summary in summaries]):
        terminalreporter.write_line(text)
    warning = below_minimum(attempts)
    if warning:
        terminalreporter.write_line(f"note: {warning}; single runs lie.")
    for said in said_once(attempts):
        terminalreporter.write_line(said.line())
    for note in guard_notes(attempts):
        terminalreporter.write_line(note)
    for line in serving_lines(attempts):  # first token, prefill and decode rates; a throughput drop
        terminalreporter.write_line(f"serving {line}")
    if results_path is not None:
        terminalreporter.write_line(f"results: {results_path}")
