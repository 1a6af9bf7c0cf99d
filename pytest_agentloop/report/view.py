"""`agentloop view`: one self-contained HTML file to explore a run (and its history) in a browser.

Everything is inline (the page template `view.html` beside this module, the data as JSON), so the
file opens from `file://` with no server and no network. The page stays fast on 10,000 attempts
because the heavy part is lazy: each transcript is its own inert `<script type="application/json">`
block, parsed and rendered only when someone clicks its attempt; the matrix and lists are built
from compact rows (column names once, values as arrays).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from operator import attrgetter
from pathlib import Path
from typing import Any

from pytest_agentloop.analysis.cost import Price
from pytest_agentloop.analysis.diagnosis import waste_profiles
from pytest_agentloop.analysis.facts import has_transcript
from pytest_agentloop.analysis.regressions import RunRate, find_regressions
from pytest_agentloop.analysis.stats import scored, wilson
from pytest_agentloop.analysis.verdicts import below_minimum, summarize
from pytest_agentloop.records import Attempt, Outcome, Transcript
from pytest_agentloop.report.card import render_card
from pytest_agentloop.report.decide import decide_lines
from pytest_agentloop.report.said_once import said_once

TranscriptOf = Callable[[Attempt], Transcript | None]
ATTEMPT_COLUMNS = (
    "canary",
    "tier",
    "model",
    "cell",
    "repetition",
    "outcome",
    "limit",
    "reason",
    "turns",
    "tokens",
    "tool_calls",
    "malformed_tool_calls",
    "redundant_tool_calls",
    "checks",
    "wall_s",
    "host",
)
SUMMARY_COLUMNS = (
    "model",
    "cell",
    "canary",
    "tier",
    "passes",
    "n",
    "ci_low",
    "ci_high",
    "infra",
    "diagnosis",
)
TEMPLATE = "view.html"
DATA_MARK = "/*AGENTLOOP_DATA*/null"


@dataclass(frozen=True)
class StoredRun:
    """One run of the store, for the history and the side-by-side: its id, start and attempts."""

    run_id: str
    started: str
    attempts: list[Attempt]


def stored_runs(store: Any) -> list[StoredRun]:
    """Every run of an open store with its attempts, oldest first: the history and the side-by-side."""
    return [StoredRun(r["run_id"], str(r["started"]), store.attempts(r["run_id"])) for r in store.runs()]


def _json(value: Any) -> str:
    """JSON that is safe inside a <script> element: no `<` at all, so neither `</script>` nor `<!--`
    (which changes how the HTML parser reads a script) can come from a model's text."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")


def _attempt_row(attempt: Attempt) -> list[Any]:
    checks = None if attempt.checks_total is None else f"{attempt.checks_passed}/{attempt.checks_total}"
    return [
        attempt.canary,
        attempt.tier,
        attempt.model,
        attempt.cell,
        attempt.repetition,
        attempt.outcome.value,
        attempt.limit.value if attempt.limit else None,
        attempt.reason,
        attempt.turns,
        attempt.tokens,
        attempt.tool_calls,
        attempt.malformed_tool_calls,
        attempt.redundant_tool_calls,
        checks,
        round(attempt.wall_s, 1),
        attempt.host,
    ]


def _summary_rows(attempts: Sequence[Attempt]) -> list[list[Any]]:
    """Pass/N and Wilson interval per model x cell x canary: the matrix's cells (infra errors excluded)."""
    return [
        [
            s.model,
            s.cell,
            s.canary,
            s.tier,
            s.passes,
            s.n,
            round(s.ci_low, 3),
            round(s.ci_high, 3),
            s.infra_errors,
            s.diagnosis,
        ]
        for s in sorted(summarize(attempts), key=lambda s: (s.model, s.cell, s.canary))
    ]


def _diagnoses(attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
    """Each distinct diagnosis once, with the model, cell and canaries it covers."""
    return [
        {"model": s.model, "cell": s.cell, "text": s.text, "canaries": list(s.canaries)}
        for s in said_once(attempts)
    ]


def _waste(attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
    return [
        {
            "model": p.model,
            "cell": p.cell,
            "attempts": p.attempts,
            "turns": p.turns,
            "malformed": p.malformed,
            "redundant": p.redundant,
            "noop_edits": p.noop_edits,
            "prose": p.prose,
            "findings": p.findings,
        }
        for p in sorted(waste_profiles(attempts), key=lambda p: (p.model, p.cell))
    ]


def _history(runs: Sequence[StoredRun]) -> dict[str, Any]:
    """Per run: its pooled pass/N per model and the regressions it showed against the runs before it."""
    rates: dict[tuple[str, str, str], list[RunRate]] = defaultdict(list)
    out = []
    for run in runs:
        regressions = find_regressions(run.attempts, rates)
        per_model = {}
        for model in sorted({a.model for a in run.attempts}):
            counted = scored(a for a in run.attempts if a.model == model)
            passes = sum(a.outcome is Outcome.PASSED for a in counted)
            low, high = wilson(passes, len(counted))
            per_model[model] = [passes, len(counted), round(low, 3), round(high, 3)]
        out.append(
            {
                "run_id": run.run_id,
                "started": run.started,
                "models": per_model,
                "regressions": [[r.model, r.cell, r.scope, r.describe()] for r in regressions],
                "summary": [row[:6] + row[6:8] for row in _summary_rows(run.attempts)],
            }
        )
        for s in summarize(run.attempts):
            if s.n:
                rates[(s.model, s.cell, s.canary)].append(RunRate(run.run_id, run.started, s.passes, s.n))
    return {"runs": out}


def view_data(
    attempts: Sequence[Attempt],
    prices: Mapping[str, Price],
    label: str,
    runs: Sequence[StoredRun] = (),
    fingerprint: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything the page shows except the transcripts, which go in their own blocks."""
    models = sorted({a.model for a in attempts})
    return {
        "label": label,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "decision": decide_lines(attempts, prices),
        "note": below_minimum(attempts),
        "columns": list(ATTEMPT_COLUMNS),
        "attempts": [_attempt_row(a) for a in attempts],
        "has_transcript": [has_transcript(a) for a in attempts],
        "summary_columns": list(SUMMARY_COLUMNS),
        "summary": _summary_rows(attempts),
        "diagnoses": _diagnoses(attempts),
        "waste": _waste(attempts),
        "cards": {m: render_card(m, attempts, fingerprint or {}, prices) for m in models},
        "history": _history(runs) if runs else None,
    }


def render_view(
    attempts: Sequence[Attempt],
    prices: Mapping[str, Price],
    label: str,
    runs: Sequence[StoredRun] = (),
    fingerprint: Mapping[str, Any] | None = None,
    transcript_of: TranscriptOf = attrgetter("transcript"),
) -> str:
    """The whole page: the template with the data and one lazy transcript block per attempt.

    `transcript_of` reads each attempt's transcript (the run's owner reads them back from disk)."""
    template = resources.files("pytest_agentloop.report").joinpath(TEMPLATE).read_text(encoding="utf-8")
    data = view_data(attempts, prices, label, runs, fingerprint)
    blocks = "".join(_transcript_blocks(attempts, transcript_of))
    head, _, tail = template.partition(DATA_MARK)
    page = head + _json(data) + tail
    return page.replace("<!--AGENTLOOP_TRANSCRIPTS-->", blocks)


def _transcript_blocks(attempts: Iterable[Attempt], transcript_of: TranscriptOf) -> Iterable[str]:
    for index, attempt in enumerate(attempts):
        transcript = transcript_of(attempt)
        if transcript is not None:
            body = _json(transcript.model_dump(mode="json"))
            yield f'<script type="application/json" id="t{index}">{body}</script>\n'


def write_view(
    path: Path,
    attempts: Sequence[Attempt],
    prices: Mapping[str, Price],
    label: str,
    runs: Sequence[StoredRun] = (),
    fingerprint: Mapping[str, Any] | None = None,
    transcript_of: TranscriptOf = attrgetter("transcript"),
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    page = render_view(attempts, prices, label, runs, fingerprint, transcript_of)
    path.write_text(page, encoding="utf-8")
    return path
