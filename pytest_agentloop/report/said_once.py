"""Each diagnosis said once, with the canaries it covers.

Fifteen canaries that ran out of budget the same way get the same sentence; printed per canary it
filled a screen (and the card, and the HTML) with one finding. Every report groups through here.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from pytest_agentloop.analysis.diagnosis import ceiling_diagnoses, pooled_ceiling_diagnoses
from pytest_agentloop.analysis.verdicts import summarize
from pytest_agentloop.cells import BASELINE
from pytest_agentloop.records import Attempt


@dataclass(frozen=True)
class Said:
    """One diagnosis of one model x cell, and every canary (or pooled label) it was made for."""

    model: str
    cell: str
    text: str
    canaries: tuple[str, ...]

    @property
    def where(self) -> str:
        """`tiny`, or `3 canaries (a, b, c)`."""
        names = self.canaries
        return names[0] if len(names) == 1 else f"{len(names)} canaries ({', '.join(names)})"

    def line(self) -> str:
        return f"{self.model} · {self.cell} · {self.where}: {self.text}"


def said_once(attempts: Iterable[Attempt], *, ceilings_only: bool = False) -> list[Said]:
    """The pooled ceiling diagnoses first, then each distinct per-canary diagnosis once.

    A canary whose own ceiling verdict is the pooled one adds nothing to the pooled line (which names
    it); only the canaries that differ keep a line of their own, as DESIGN.md promises.
    """
    attempts = list(attempts)
    ceilings = {(d.model, d.canary): d for d in ceiling_diagnoses(attempts)}
    pooled: dict[str, Said] = {}
    verdicts: dict[str, str] = {}
    for d in pooled_ceiling_diagnoses(attempts):
        names = ", ".join(sorted(canary for model, canary in ceilings if model == d.model))
        pooled[d.model] = Said(d.model, BASELINE.id, d.text, (f"{d.canary} pooled ({names})",))
        verdicts[d.model] = d.verdict
    covered: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for summary in sorted(summarize(attempts), key=lambda s: (s.model, s.cell, s.canary)):
        ceiling = ceilings.get((summary.model, summary.canary)) if summary.cell == BASELINE.id else None
        if not summary.diagnosis or (ceilings_only and ceiling is None):
            continue
        if ceiling is not None and ceiling.verdict == verdicts.get(summary.model):
            continue  # said by the pooled line
        covered[(summary.model, summary.cell, summary.diagnosis)].append(summary.canary)
    return [*pooled.values()] + [
        Said(m, c, text, tuple(canaries)) for (m, c, text), canaries in covered.items()
    ]
