"""The pytest-html report: the run's verdict first, then every attempt with its readable transcript.

Registered only when pytest-html is installed (its hookspecs must exist). Everything here runs on
the controller, from the attempt records the reports carry, so `-n 4` needs nothing special.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any

from pytest_agentloop.analysis.cost import Price, cost_rows
from pytest_agentloop.analysis.diagnosis import (
    waste_profiles,
)
from pytest_agentloop.analysis.verdicts import CellSummary, Rollup, cell_rollups, summarize
from pytest_agentloop.records import Attempt, Transcript, Turn
from pytest_agentloop.report.said_once import Said, said_once

RESULT_LIMIT = 2000  # characters of one tool result shown in the transcript
COLUMNS = (
    ("model", "Model"),
    ("cell", "Cell"),
    ("repetition", "Rep"),
    ("outcome", "Outcome"),
    ("turns", "Turns"),
)
STYLE = """<style>
.agentloop table {border-collapse: collapse; margin: 6px 0 14px;}
.agentloop th, .agentloop td {border: 1px solid #ccc; padding: 3px 8px; font-size: 13px; text-align: left;}
.agentloop th {background: #f2f2f2;}
.agentloop .num {text-align: right;}
.agentloop .flag {color: #b00020; font-weight: bold;}
.agentloop .decision {background: #eef4ff; border-left: 4px solid #1d4ed8; padding: 4px 10px;}
.agentloop .decision pre {white-space: pre-wrap; overflow-wrap: anywhere;}
.agentloop-transcript pre {white-space: pre-wrap; background: #f7f7f7; padding: 6px; margin: 3px 0;}
/* A looping model writes 400-character identifiers; unbroken, one widens the whole results table. */
.agentloop-transcript pre, .logwrapper .log {overflow-wrap: anywhere;}
.agentloop-transcript .error {background: #fdecea;}
.agentloop-transcript .note {color: #666; font-style: italic;}
</style>"""


def _table(
    headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: frozenset[int] = frozenset()
) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _money(value: float | None) -> str:
    if value is None:
        return "no price"
    return "∞ (no pass)" if math.isinf(value) else f"${value:.4f}"


def verdict_rows(attempts: Sequence[Attempt], prices: Mapping[str, Price]) -> list[list[str]]:
    """One row per model × cell: pass/N, interval, mean turns to pass, budget by limit, cost, diagnoses."""
    summaries = summarize(attempts)
    said = said_once(attempts)
    rows = []
    for rollup in sorted(cell_rollups(attempts), key=lambda r: (r.model, r.cell)):
        own = [s for s in summaries if (s.model, s.cell) == (rollup.model, rollup.cell)]
        cost = cost_rows([a for a in attempts if (a.model, a.cell) == (rollup.model, rollup.cell)], prices)
        rows.append(
            [
                escape(rollup.model),
                escape(rollup.cell),
                f"{rollup.passes}/{rollup.n}",
                f"{rollup.ci_low:.2f}–{rollup.ci_high:.2f}",
                _mean_turns(own),
                _by_limit(own),
                _money(cost[0].cost_per_pass if cost else None),
                str(rollup.infra_errors),
                "<br>".join(escape(line) for line in _diagnoses(rollup, said)) or "–",
            ]
        )
    return rows


def _diagnoses(rollup: Rollup, said: Sequence[Said]) -> list[str]:
    """The cell's lines: the pooled ceiling first (on the baseline), then each distinct diagnosis once."""
    return [f"{s.where}: {s.text}" for s in said if (s.model, s.cell) == (rollup.model, rollup.cell)]


def _mean_turns(summaries: Sequence[CellSummary]) -> str:
    """Mean turns to pass over the cell's passes (each canary's mean weighted by its passes)."""
    weighted = [(s.mean_turns_to_pass, s.passes) for s in summaries if s.mean_turns_to_pass is not None]
    passes = sum(p for _, p in weighted)
    return f"{sum(m * p for m, p in weighted) / passes:.1f}" if passes else "–"


def _by_limit(summaries: Sequence[CellSummary]) -> str:
    totals = {limit: 0 for limit in ("turns", "tokens", "time")}
    for summary in summaries:
        for limit, count in summary.budget_exceeded_by_limit.items():
            totals[limit] = totals.get(limit, 0) + count
    return " / ".join(str(totals[limit]) for limit in ("turns", "tokens", "time"))


def summary_html(
    attempts: Sequence[Attempt],
    prices: Mapping[str, Price],
    notes: Mapping[str, Sequence[str]],
    view: str | None = None,
) -> str:
    """The verdict block that opens the report: the decision, then tables, charts and flagged notes
    (gates, regressions); `view` links the run's `agentloop view` page."""
    from pytest_agentloop.report.charts import pass_rate_chart, waste_chart
    from pytest_agentloop.report.decide import decide_lines

    rollups: list[Rollup] = cell_rollups(attempts)
    parts = [STYLE, '<div class="agentloop">', "<h2>agentloop verdict</h2>"]
    decision = "\n".join(decide_lines(attempts, prices)) or "no scored attempt: nothing to decide"
    parts.append(f'<div class="decision"><b>Decision</b>{_pre(decision)}</div>')
    if view:
        parts.append(
            f'<p><a href="{escape(view)}">Explore this run in agentloop view</a>: the matrix, every '
            "transcript turn by turn, wasted turns, cards and history (one file, no server).</p>"
        )
    for title, lines in notes.items():
        if lines:
            items = "".join(f'<li class="flag">{escape(line)}</li>' for line in lines)
            parts.append(f"<h3>{escape(title)}</h3><ul>{items}</ul>")
    parts.append(
        _table(
            (
                "model",
                "cell",
                "pass/N",
                "95% CI",
                "mean turns to pass",
                "over budget turns/tokens/time",
                "cost per pass",
                "infra errors",
                "diagnoses",
            ),
            verdict_rows(attempts, prices),
            numeric=frozenset({2, 4, 7}),
        )
    )
    parts.append(pass_rate_chart(rollups))
    profiles = waste_profiles(attempts)
    parts.append(waste_chart(profiles))
    findings = [note for profile in profiles for note in profile.findings]
    if findings:
        parts.append("<ul>" + "".join(f"<li>{escape(n)}</li>" for n in findings) + "</ul>")
    parts.append("<h3>Per canary</h3>")
    parts.append(
        _table(
            ("model", "cell", "canary", "pass/N", "95% CI", "turns to pass", "diagnosis"),
            (
                [
                    escape(s.model),
                    escape(s.cell),
                    escape(s.canary),
                    f"{s.passes}/{s.n}",
                    f"{s.ci_low:.2f}–{s.ci_high:.2f}",
                    "–" if s.mean_turns_to_pass is None else f"{s.mean_turns_to_pass:.1f}",
                    escape(s.diagnosis) or "–",
                ]
                for s in sorted(summarize(attempts), key=lambda s: (s.model, s.cell, s.canary))
            ),
            numeric=frozenset({3, 5}),
        )
    )
    parts.append("</div>")
    return "".join(parts)


def _pre(text: str, css: str = "") -> str:
    return f"<pre{f' class={css}' if css else ''}>{escape(text)}</pre>"


def _truncated(text: str) -> str:
    if len(text) <= RESULT_LIMIT:
        return _pre(text)
    more = len(text) - RESULT_LIMIT
    return _pre(text[:RESULT_LIMIT]) + f'<p class="note">… {more} more characters truncated</p>'


def _turn_html(turn: Turn) -> str:
    parts = [f"<h4>Turn {turn.index + 1} ({turn.usage.total} tokens, {turn.latency_s:.1f}s)</h4>"]
    if turn.content.strip():
        parts.append(_pre(turn.content))
    results = {result.call_id: result for result in turn.results}
    for call in turn.calls:
        parts.append(_pre(f"→ {call.name}({json.dumps(call.arguments, ensure_ascii=False)})"))
        result = results.get(call.id)
        if result is not None:
            flags = ", ".join(
                f
                for f, on in (
                    ("tool error: the call did not do what was asked", not result.ok),
                    ("redundant", result.redundant),
                )
                if on
            )
            parts.append(f'<p class="note">result{f" ({flags})" if flags else ""}:</p>')
            parts.append(_truncated(result.output))
    for bad in turn.malformed:
        parts.append(
            _pre(
                f"✗ {bad.kind}: {bad.error}\nraw: {bad.raw}\n(this error was fed back to the model)", "error"
            )
        )
    return "".join(parts)


def transcript_html(attempt: Attempt, transcript: Transcript) -> str:
    """System prompt, spec, every turn's calls with arguments and (truncated) results, errors fed back,
    diff, checks."""
    outcome = attempt.outcome.value + (f" ({attempt.limit.value})" if attempt.limit else "")
    system = (
        f"<details><summary>System prompt ({len(transcript.system_prompt)} characters)</summary>"
        f"{_pre(transcript.system_prompt)}</details>"
        if transcript.system_prompt
        else '<p class="note">No system prompt: this agent talks to no model.</p>'
    )
    parts = [
        '<div class="agentloop-transcript">',
        f"<p><b>{escape(outcome)}</b>: {escape(attempt.reason)}</p>",
        system,
        "<h4>Spec</h4>",
        _pre(transcript.spec or "(none recorded)"),
        *(_turn_html(turn) for turn in transcript.turns),
        "<h4>Final diff</h4>",
        _pre(transcript.final_diff or "(no change)"),
        "<h4>Hidden checks</h4>",
        _pre(transcript.check_output or "(not run)"),
        "</div>",
    ]
    return "".join(parts)


def _record(report: Any) -> dict[str, Any] | None:
    record = getattr(report, "agentloop_attempt", None)
    return record if isinstance(record, dict) else None


class HtmlReport:
    """pytest-html hooks: extra sortable columns, a transcript extra per item, the verdict on top."""

    def __init__(self, config: Any, prices: Mapping[str, Price]) -> None:
        self.config = config
        self.prices = prices

    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        at = 2  # after Result and Test
        cells[at:at] = [
            f'<th class="sortable" data-column-type="{key}">{title}</th>' for key, title in COLUMNS
        ]

    def pytest_html_results_table_row(self, report: Any, cells: list[str]) -> None:
        record = _record(report) or getattr(report, "agentloop_identity", {})
        values = [record.get(key, "") for key, _ in COLUMNS]
        cells[2:2] = [
            f'<td class="col-{key}">{escape(str("" if v is None else v))}</td>'
            for (key, _), v in zip(COLUMNS, values, strict=True)
        ]

    def pytest_runtest_logreport(self, report: Any) -> None:
        """Add the transcript extra on the controller, before pytest-html (trylast) reads the extras."""
        record = _record(report)
        if record is None or report.when != "call" or hasattr(self.config, "workerinput"):
            return
        from pytest_html import extras

        attempt = Attempt.from_record(record)
        if attempt.transcript is not None:
            content = transcript_html(attempt, attempt.transcript)
            report.extras = [*getattr(report, "extras", []), extras.html(content)]

    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: Any
    ) -> None:
        from pytest_agentloop.state import run_attempts

        attempts = run_attempts(self.config)
        if attempts:
            prefix.append(summary_html(attempts, self.prices, self._notes(), self._write_view(attempts)))

    def _write_view(self, attempts: Sequence[Attempt]) -> str:
        """`agentloop view`'s page beside the report (report.html -> report.view.html); its relative link."""
        from pathlib import Path

        from pytest_agentloop.report.card import host_fingerprint
        from pytest_agentloop.report.view import stored_runs, write_view
        from pytest_agentloop.state import results_key

        report = Path(self.config.getoption("htmlpath"))
        recorder = self.config.pluginmanager.get_plugin("agentloop-store")
        runs = stored_runs(recorder.store) if recorder is not None else []
        path = report.with_name(report.stem + ".view.html")
        label = f"{report.stem} ({len(attempts)} attempts)"
        owner = self.config.stash[results_key]  # transcripts are read back from it one at a time
        write_view(path, attempts, self.prices, label, runs, host_fingerprint(), owner.transcript_of)
        return path.name

    def _notes(self) -> dict[str, list[str]]:
        from pytest_agentloop.probe import PROBE_STABLE

        manager = self.config.pluginmanager
        store, gates = manager.get_plugin("agentloop-store"), manager.get_plugin("agentloop-gates")
        from pytest_agentloop.report.outputs import unsandboxed_note

        unsandboxed = unsandboxed_note(self.config)
        return {
            "Sandbox": [unsandboxed] if unsandboxed else [],
            "Unmet gates": [r.describe() for r in gates.results if not r.met] if gates else [],
            "Regressions against the history": [r.describe() for r in store.regressions] if store else [],
            "Determinism probe": [n for n in store.probe_findings if not n.endswith(PROBE_STABLE)]
            if store
            else [],
        }
