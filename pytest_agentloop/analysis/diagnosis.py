"""Why attempts fail: which budget ceiling a model hits, and where its turns go.

The methodology's point: most local-model failures are budget, not brains, and only a paired
comparison against cells that raised the turn or token budget can tell a turn ceiling from a token
ceiling from a capability ceiling. A raw rate difference at N=3 cannot.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pytest_agentloop.analysis.stats import (
    MIN_REPETITIONS,
    Comparison,
    compare_attempts,
    min_discordant,
    scored,
)
from pytest_agentloop.records import Attempt, Outcome, Turn

BASELINE = "baseline"
BUDGETS = ("turns", "tokens")
EDIT_TOOLS = frozenset({"write_file", "edit_file"})
TEMPLATE_FIX = "the runtime's chat template does not render tools: use tool_mode=prompted or constrained"

CeilingVerdict = Literal[
    "turn ceiling",
    "token ceiling",
    "capability ceiling",
    "inconclusive",
    "incomplete sweep",
    "context truncated",
]
CEILING: dict[str, CeilingVerdict] = {"turns": "turn ceiling", "tokens": "token ceiling"}


@dataclass(frozen=True)
class CeilingDiagnosis:
    model: str
    canary: str
    verdict: CeilingVerdict
    text: str  # one line: the verdict, the evidence, and what to run or change next


def group(attempts: Iterable[Attempt], *keys: str) -> dict[tuple[Any, ...], list[Attempt]]:
    """Attempts grouped by the named fields, in sorted key order so every report is deterministic."""
    groups: dict[tuple[Any, ...], list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        groups[tuple(getattr(attempt, key) for key in keys)].append(attempt)
    return dict(sorted(groups.items()))


def raises_budget(cell: Sequence[Attempt], baseline: Sequence[Attempt], budget: str) -> bool:
    """Whether a cell's attempts ran with a larger `budget` than the baseline's.

    With no explicit baseline budget (the canaries' own), a swept budget counts as a raise: sweeps
    exist to lift the canary defaults, and `--agent-diagnose` probes are always doubled.
    """
    if not cell or not cell[0].cell.startswith(f"{budget}="):
        return False
    raised = cell[0].cell_config.get(budget)
    base = baseline[0].cell_config.get(budget) if baseline else None
    return raised is not None and (base is None or raised > base)


Probes = dict[str, list[tuple[str, list[Attempt]]]]  # budget -> the cells that raised it, with their runs


def _over_budget(attempts: Iterable[Attempt]) -> Iterator[tuple[str, dict[str, list[Attempt]], Probes]]:
    """Per model: the baseline runs of each canary that ran out of budget, and the raised-budget cells."""
    for (model,), own in group(scored(attempts), "model").items():
        cells = {cell: runs for (cell,), runs in group(own, "cell").items()}
        baseline = cells.get(BASELINE, [])
        over = {
            canary: runs
            for (canary,), runs in group(baseline, "canary").items()
            if any(a.outcome is Outcome.BUDGET_EXCEEDED or a.context_truncated for a in runs)
        }
        probes = {
            budget: [(cid, runs) for cid, runs in cells.items() if raises_budget(runs, baseline, budget)]
            for budget in BUDGETS
        }
        yield model, over, probes


def ceiling_diagnoses(attempts: Iterable[Attempt]) -> list[CeilingDiagnosis]:
    """One diagnosis per model x canary whose baseline attempts ran out of budget."""
    return [
        _diagnose(model, canary, runs, probes)
        for model, over, probes in _over_budget(attempts)
        for canary, runs in over.items()
    ]


def pooled_ceiling_diagnoses(attempts: Iterable[Attempt]) -> list[CeilingDiagnosis]:
    """One diagnosis per model over all its over-budget canaries together (where there are two or more).

    At N=3 one canary can never separate the ceilings: the exact test needs more baseline failures
    to improve on than three runs hold. Paired runs pooled over the canaries often can. A single
    canary may still differ (turn-limited where the rest are not): its own line says so.
    """
    return [
        _diagnose(model, f"{len(over)} over-budget canaries", [a for r in over.values() for a in r], probes)
        for model, over, probes in _over_budget(attempts)
        if len(over) >= 2
    ]


def _diagnose(model: str, label: str, base_runs: list[Attempt], probes: Probes) -> CeilingDiagnosis:
    """The verdict for `base_runs` (one canary's, or several pooled), paired with the probes' runs."""
    canaries = {a.canary for a in base_runs}
    over = sum(a.outcome is Outcome.BUDGET_EXCEEDED for a in base_runs)
    limits = sorted({str(a.limit) for a in base_runs if a.limit is not None})
    lead = (
        f"baseline ran out of budget in {over}/{len(base_runs)} runs ({', '.join(limits) or 'limit unknown'})"
    )
    results: dict[str, tuple[str, Comparison]] = {}
    raised_runs: dict[str, list[Attempt]] = {}
    for budget, cells in probes.items():
        paired = [(cid, [a for a in runs if a.canary in canaries]) for cid, runs in cells]
        compared = [(cid, compare_attempts(base_runs, runs, cid), runs) for cid, runs in paired]
        compared = [item for item in compared if item[1].n_pairs]
        if compared:  # the strongest evidence among the cells that raised this budget
            cid, comparison, runs = max(
                compared, key=lambda item: (item[1].verdict == "better", item[1].delta)
            )
            results[budget], raised_runs[budget] = (cid, comparison), runs

    def made(verdict: CeilingVerdict, text: str) -> CeilingDiagnosis:
        return CeilingDiagnosis(model=model, canary=label, verdict=verdict, text=f"{verdict}: {text}; {lead}")

    cut = sum(bool(a.context_truncated) for a in base_runs)
    if cut:  # the runtime cut the history: nothing here measures the model
        return made(
            "context truncated",
            f"the runtime cut the prompt to fit its context in {cut}/{len(base_runs)} runs; raise the "
            "context ([guard] context, or the runtime's own) and rerun before reading these as budget or "
            "capability",
        )

    fixed = [(budget, c) for budget, (_, c) in results.items() if c.verdict == "better"]
    if fixed:
        budget, comparison = max(fixed, key=lambda item: item[1].delta)
        return made(CEILING[budget], f"more {budget} fixed it: {comparison.text}")
    thin = [(cid, c) for cid, c in results.values() if _too_thin(c)]
    if thin:
        return made("inconclusive", _how_many_more(thin))
    missing = [budget for budget in BUDGETS if budget not in results]
    if missing:
        tried = (
            "; ".join(f"{cid} did not help ({c.text})" for cid, c in results.values())
            or "no budget was raised"
        )
        adds = " and ".join(f"{budget}=x2" for budget in missing)
        return made(
            "incomplete sweep",
            f"{tried}; add {adds} (or run with --agent-diagnose) to tell the ceilings apart",
        )
    interlocked = _interlocked(results, raised_runs)
    if interlocked:
        return made(
            "inconclusive",
            f"each raised budget ran into the other one ({interlocked}), so neither raise could show "
            "what the model does with room to finish; raise both in the baseline and rerun before calling "
            "it a capability ceiling",
        )
    evidence = "; ".join(c.text for _, c in results.values())
    return made(
        "capability ceiling",
        f"raising both turns and tokens did not help, so more budget is wasted: {evidence}",
    )


def _interlocked(results: dict[str, tuple[str, Comparison]], raised_runs: dict[str, list[Attempt]]) -> str:
    """Evidence that every raise mostly stopped on the other budget (raised turns ran out of tokens,
    raised tokens ran out of turns); empty when any raise failed for another reason."""
    found = []
    for budget, (cell_id, _) in results.items():
        (other,) = (b for b in BUDGETS if b != budget)
        runs = raised_runs[budget]
        stopped = sum(a.outcome is Outcome.BUDGET_EXCEEDED and str(a.limit) == other for a in runs)
        if 2 * stopped <= len(runs):
            return ""
        found.append(f"{cell_id} stopped on {other} in {stopped}/{len(runs)} runs")
    return "; ".join(found)


def _too_thin(comparison: Comparison) -> bool:
    """Too few baseline failures (or repetitions) for any improvement to reach significance."""
    return comparison.repetitions < MIN_REPETITIONS or comparison.base_failures < min_discordant()


def _how_many_more(thin: list[tuple[str, Comparison]]) -> str:
    """What the too-thin comparisons lack, one clause per distinct shortfall (cells alike share one)."""
    needed = min_discordant()
    clauses: dict[tuple[int, int, int], list[str]] = {}
    for cell_id, comparison in thin:
        failures = comparison.base_failures
        rate = failures / comparison.n_pairs if comparison.n_pairs else 0.0
        more = (
            math.ceil((needed - failures) / rate)
            if 0 < failures < needed
            else (needed if failures == 0 else 0)
        )
        more = max(more, MIN_REPETITIONS - comparison.repetitions)
        clauses.setdefault((comparison.n_pairs, failures, more), []).append(cell_id)
    return "; ".join(
        f"{' and '.join(cells)} {'each have' if len(cells) > 1 else 'has'} {pairs} paired runs "
        f"with {failures} baseline failures to improve on (the exact test needs at least {needed}); "
        f"run about {more} more repetitions of baseline and {', '.join(cells)}"
        for (pairs, failures, more), cells in clauses.items()
    )


@dataclass(frozen=True)
class WasteProfile:
    """Where one model x cell's turns went. Counts are turns; None where only counters were recorded."""

    model: str
    cell: str
    attempts: int
    turns: int
    malformed: int  # turns whose every call was malformed
    redundant: int  # turns whose every call repeated an earlier one with nothing changed
    noop_edits: int | None  # turns whose edits changed nothing
    prose: int | None  # turns with neither a call nor a final answer
    text_calls: int  # calls recovered from message text
    from_transcripts: bool
    parser_mismatch: bool  # calls came as text while the runtime parsed none: fix the runtime, not the model
    dead_end: bool  # native mode and not a single tool call in any attempt

    def share(self, count: int | None) -> str:
        if count is None:
            return "n/a (no transcripts)"
        return f"{count / self.turns:.0%}" if self.turns else "0%"

    @property
    def findings(self) -> list[str]:
        notes = []
        if self.dead_end:
            attempts = f"{self.attempts} attempt" + ("s" if self.attempts != 1 else "")
            notes.append(f"dead end: zero tool calls in native mode over {attempts}; {TEMPLATE_FIX}")
        if self.parser_mismatch:
            notes.append(
                f"runtime-parser mismatch: {self.text_calls} calls arrived as text while the runtime "
                "returned no tool_calls; fix the runtime or its chat template (or use tool_mode=prompted), "
                "not the model"
            )
        return notes


def waste_profiles(attempts: Iterable[Attempt]) -> list[WasteProfile]:
    """One profile per model x cell: the turns a config wastes are what tuning can win back."""
    return [
        _profile(model, cell, runs)
        for (model, cell), runs in group(scored(attempts), "model", "cell").items()
    ]


def _profile(model: str, cell: str, runs: list[Attempt]) -> WasteProfile:
    native = all(a.cell_config.get("tool_mode", "native") == "native" for a in runs)
    counts = {"malformed": 0, "redundant": 0, "noop": 0, "prose": 0}
    mismatch = False
    with_transcript = [a for a in runs if a.transcript is not None]
    for attempt in runs:
        if attempt.transcript is None:  # counters count calls, not turns: cap them at the turns taken
            taken = attempt.turns or 0  # None: an agent that reports no counters adds nothing
            counts["malformed"] += min(attempt.malformed_tool_calls or 0, taken)
            counts["redundant"] += min(attempt.redundant_tool_calls or 0, taken)
            mismatch = mismatch or (attempt.text_tool_calls or 0) > 0
            continue
        turns = attempt.transcript.turns
        for position, turn in enumerate(turns):
            kind = _waste_kind(turn, final=position == len(turns) - 1)
            if kind:
                counts[kind] += 1
            mismatch = mismatch or (
                turn.native_tool_calls == 0 and any(c.source == "text" for c in turn.calls)
            )
    return WasteProfile(
        model=model,
        cell=cell,
        attempts=len(runs),
        turns=sum(a.turns or 0 for a in runs),
        malformed=counts["malformed"],
        redundant=counts["redundant"],
        noop_edits=counts["noop"] if with_transcript else None,
        prose=counts["prose"] if with_transcript else None,
        text_calls=sum(a.text_tool_calls or 0 for a in runs),
        from_transcripts=len(with_transcript) == len(runs),
        parser_mismatch=native and mismatch,
        dead_end=native and bool(runs) and all(_no_call(a) for a in runs),
    )


def _no_call(attempt: Attempt) -> bool:
    """Not one tool call, valid or malformed, and so no pass either."""
    silent = attempt.tool_calls == 0 and not attempt.malformed_tool_calls
    return silent and attempt.outcome is not Outcome.PASSED


def _waste_kind(turn: Turn, *, final: bool) -> str | None:
    """The one way a turn was wasted, or None if it did useful work (or was the closing answer)."""
    if not turn.calls:
        if turn.malformed:
            return "malformed"
        return None if final else "prose"
    if turn.results and all(r.redundant for r in turn.results):
        return "redundant"
    if turn.results and all(r.name in EDIT_TOOLS and not r.changed for r in turn.results):
        return "noop"
    return None
