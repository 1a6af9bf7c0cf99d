"""Why attempts fail: which budget ceiling a model hits, and where its turns go.

The methodology's point: most local-model failures are budget, not brains, and only a comparison
against cells that raised the turn or token budget can tell a turn ceiling from a token ceiling
from a capability ceiling. A raw rate difference at N=3 cannot, and a raise that did not help is no
evidence of a capability ceiling until the interval of the difference excludes a real improvement.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pytest_agentloop.analysis.facts import facts_of
from pytest_agentloop.analysis.stats import (
    MAX_MORE_RUNS,
    MIN_REPETITIONS,
    Comparison,
    compare_attempts,
    more_runs,
    scored,
)
from pytest_agentloop.cells import BASELINE
from pytest_agentloop.records import Attempt, Limit, Outcome

BUDGETS = ("turns", "tokens")
TEMPLATE_FIX = "the runtime's chat template does not render tools: use tool_mode=prompted or constrained"

CeilingVerdict = Literal[
    "turn ceiling",
    "token ceiling",
    "budget ceiling",  # only raising turns and tokens together fixed it
    "capability ceiling",
    "inconclusive",
    "incomplete sweep",
    "context truncated",
    "replies truncated",  # cut at max_response_tokens: raise that, not turns or tokens
    "time limit",  # the wall-clock budget, not turns or tokens
]
CEILING: dict[str, CeilingVerdict] = {
    "turns": "turn ceiling",
    "tokens": "token ceiling",
    "both": "budget ceiling",
}
# A capability ceiling needs the interval of (both budgets raised - baseline) to end below this: an
# improvement of 30 points excluded. At N=9 on one canary, 0/9 against 0/9 just does (upper +0.30).
CAPABILITY_MARGIN = 0.30
RaiseKind = Literal["turns", "tokens", "both"]
KINDS: tuple[RaiseKind, ...] = ("turns", "tokens", "both")
# Over-budget runs with finish_reason "length" on at least this share of their turns were cut short
# by max_response_tokens: a model that cannot finish a call runs out of turns without being slow.
TRUNCATED_SHARE = 0.25


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


def budget_of(attempt: Attempt, budget: str) -> float | None:
    """The budget in force: recorded on the attempt, else the cell's override (older results files)."""
    value = attempt.budget.get(budget) or attempt.cell_config.get(budget)
    return None if value is None else float(value)


def budget_direction(cell: Sequence[Attempt], baseline: Sequence[Attempt], budget: str) -> int:
    """+1 when the cell ran with more of `budget` than the baseline, -1 with less (a cut), 0 otherwise.

    Without the baseline's own figure (a results file from before budgets were recorded, baseline on
    the canary's default) only a doubling probe (`turns=x2`) is known to be a raise.
    """
    if not cell or not baseline:
        return 0
    mine, base = budget_of(cell[0], budget), budget_of(baseline[0], budget)
    if mine is None:
        return 0
    if base is None:
        return 1 if cell[0].cell.startswith(f"{budget}=x") else 0
    return (mine > base) - (mine < base)


def raise_kind(cell: Sequence[Attempt], baseline: Sequence[Attempt]) -> RaiseKind | None:
    """Which budgets a cell raised, when that is all it changed (no cut, no other factor); else None."""
    others = {k: v for k, v in cell[0].cell_config.items() if k not in BUDGETS} if cell else {}
    base_others = {k: v for k, v in baseline[0].cell_config.items() if k not in BUDGETS} if baseline else {}
    if others != base_others:
        return None
    moves = {budget: budget_direction(cell, baseline, budget) for budget in BUDGETS}
    if -1 in moves.values():
        return None
    raised = [budget for budget, move in moves.items() if move == 1]
    if len(raised) == 2:
        return "both"
    return "turns" if raised == ["turns"] else "tokens" if raised == ["tokens"] else None


Probes = dict[RaiseKind, list[tuple[str, list[Attempt]]]]  # kind -> the cells that raised it, with runs


def _over_budget(attempts: Iterable[Attempt]) -> Iterator[tuple[str, dict[str, list[Attempt]], Probes]]:
    """Per model: the baseline runs of each canary that ran out of budget, and the raised-budget cells."""
    for (model,), own in group(scored(attempts), "model").items():
        cells = {cell: runs for (cell,), runs in group(own, "cell").items()}
        baseline = cells.get(BASELINE.id, [])
        over = {
            canary: runs
            for (canary,), runs in group(baseline, "canary").items()
            if any(a.outcome is Outcome.BUDGET_EXCEEDED or a.context_truncated for a in runs)
        }
        probes: Probes = {}
        for cid, runs in cells.items():
            kind = raise_kind(runs, baseline) if cid != BASELINE.id else None
            if kind is not None:
                probes.setdefault(kind, []).append((cid, runs))
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

    At N=3 one canary rarely separates the ceilings; the runs pooled over the canaries often can.
    A single canary may still differ (turn-limited where the rest are not): its own line says so.
    """
    return [
        _diagnose(model, f"{len(over)} over-budget canaries", [a for r in over.values() for a in r], probes)
        for model, over, probes in _over_budget(attempts)
        if len(over) >= 2
    ]


def _diagnose(model: str, label: str, base_runs: list[Attempt], probes: Probes) -> CeilingDiagnosis:
    """The verdict for `base_runs` (one canary's, or several pooled) against the raised-budget cells.

    A ceiling is called from the interval of the difference: a raise whose interval lies above zero
    fixed it; a capability ceiling needs a cell that raised both budgets and an interval that ends
    below CAPABILITY_MARGIN. Anything else is inconclusive and says how many runs would settle it.
    """
    canaries = {a.canary for a in base_runs}
    over = sum(a.outcome is Outcome.BUDGET_EXCEEDED for a in base_runs)
    limits = sorted({str(a.limit) for a in base_runs if a.limit is not None})
    stopped = ", ".join(limits) or "limit unknown"
    lead = f"baseline ran out of budget in {over}/{len(base_runs)} runs ({stopped})"
    results: dict[RaiseKind, tuple[str, Comparison]] = {}
    for kind, cells in probes.items():
        compared = [
            (cid, compare_attempts(base_runs, [a for a in runs if a.canary in canaries], cid))
            for cid, runs in cells
        ]
        compared = [item for item in compared if item[1].cell_n]
        if compared:  # the strongest evidence among the cells that raised this way
            results[kind] = max(compared, key=lambda item: (item[1].ci_low, item[1].delta))

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

    wire = wire_diagnosis(base_runs)
    if wire is not None:  # replies cut short, or the clock: turn and token advice would be wrong
        return made(*wire)

    fixed = [(kind, c) for kind, (_, c) in results.items() if c.verdict == "better"]
    if fixed:
        kind, comparison = max(fixed, key=lambda item: (item[0] != "both", item[1].ci_low))
        what = "turns and tokens together" if kind == "both" else kind
        return made(CEILING[kind], f"more {what} fixed it: {comparison.text}")
    both = results.get("both")
    if both and both[1].ci_high < CAPABILITY_MARGIN and both[1].repetitions >= MIN_REPETITIONS:
        return made(
            "capability ceiling",
            f"raising turns and tokens together excluded an improvement of {CAPABILITY_MARGIN:.0%} or more, "
            f"so more budget is wasted: {both[1].text}",
        )
    if not results:
        return made(
            "incomplete sweep",
            "no cell raised a budget (and changed nothing else); run with --agent-diagnose, or add "
            "turns=x2, tokens=x2 and a cell raising both, to tell the ceilings apart",
        )
    return made("inconclusive", _what_settles(results))


def wire_diagnosis(runs: Sequence[Attempt]) -> tuple[CeilingVerdict, str] | None:
    """Over-budget runs that the turn and token budgets do not explain: replies cut at
    max_response_tokens (finish_reason "length" on TRUNCATED_SHARE of their turns or more), or the
    time limit in most of them. None when neither explains them."""
    over = [a for a in runs if a.outcome is Outcome.BUDGET_EXCEEDED]
    turns = sum(a.turns or 0 for a in over)
    cut = sum(a.truncated_replies or 0 for a in over)
    if turns and cut >= TRUNCATED_SHARE * turns:
        return (
            "replies truncated",
            f"replies cut at max_response_tokens in {cut} of {turns} turns of the over-budget runs; raise "
            "max_response_tokens (more turns or tokens will not help)",
        )
    timed = sum(a.limit is Limit.TIME for a in over)
    if over and 2 * timed > len(over):
        return (
            "time limit",
            f"{timed} of {len(over)} over-budget runs ran out of time; raise the canary's budget.seconds "
            "or serve the model faster (more turns or tokens will not help)",
        )
    return None


def _what_settles(results: dict[RaiseKind, tuple[str, Comparison]]) -> str:
    """For each raise tried, how many more runs would settle it; and the cell still missing, if any."""
    clauses = []
    for kind, (cid, comparison) in sorted(results.items(), key=lambda item: KINDS.index(item[0])):
        helping = (comparison.delta > 0 and kind != "both") or comparison.delta >= CAPABILITY_MARGIN / 2
        if helping:
            more = more_runs(comparison, lambda c: c.verdict == "better")
            goal = "show whether it helps"
        else:
            if kind != "both":
                clauses.append(f"{cid} showed no improvement ({comparison.text})")
                continue
            more = more_runs(
                comparison, lambda c: c.ci_high < CAPABILITY_MARGIN and c.repetitions >= MIN_REPETITIONS
            )
            goal = f"exclude an improvement of {CAPABILITY_MARGIN:.0%} (a capability ceiling)"
        amount = f"about {more}" if more is not None else f"more than {MAX_MORE_RUNS}"
        clauses.append(
            f"{amount} more runs per canary of baseline and {cid} would {goal} ({comparison.text})"
        )
    if "both" not in results:
        clauses.append(
            "no cell raised turns and tokens together, which a capability ceiling needs: "
            "add one (--agent-diagnose adds turns+tokens=x2)"
        )
    return "; ".join(clauses)


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
    from_transcripts = 0
    for attempt in runs:
        facts = facts_of(attempt)
        if facts is None:  # counters count calls, not turns: cap them at the turns taken
            taken = attempt.turns or 0  # None: an agent that reports no counters adds nothing
            counts["malformed"] += min(attempt.malformed_tool_calls or 0, taken)
            counts["redundant"] += min(attempt.redundant_tool_calls or 0, taken)
            mismatch = mismatch or (attempt.text_tool_calls or 0) > 0
            continue
        from_transcripts += 1
        for kind in counts:
            counts[kind] += getattr(facts, kind)
        mismatch = mismatch or facts.text_mismatch
    return WasteProfile(
        model=model,
        cell=cell,
        attempts=len(runs),
        turns=sum(a.turns or 0 for a in runs),
        malformed=counts["malformed"],
        redundant=counts["redundant"],
        noop_edits=counts["noop"] if from_transcripts else None,
        prose=counts["prose"] if from_transcripts else None,
        text_calls=sum(a.text_tool_calls or 0 for a in runs),
        from_transcripts=from_transcripts == len(runs),
        parser_mismatch=native and mismatch,
        dead_end=native and bool(runs) and all(_no_call(a) for a in runs),
    )


def _no_call(attempt: Attempt) -> bool:
    """Not one tool call, valid or malformed, and so no pass either."""
    silent = attempt.tool_calls == 0 and not attempt.malformed_tool_calls
    return silent and attempt.outcome is not Outcome.PASSED
