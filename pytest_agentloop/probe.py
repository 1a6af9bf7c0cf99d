"""Determinism probe: the same prompt at temperature 0, twice per run, against last run's answer.

A pass rate that moved between two runs of "the same" model may be the model's noise, or something
underneath changed: the runtime, its version, the GPU driver, the weights behind a tag. A fixed
greedy prompt separates the two: its answer should never change unless the stack did.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from pytest_agentloop.backends.base import Backend, ChatRequest, InfraError

PROBE_PROMPT = (
    "Continue this sequence with the next five numbers, separated by commas, and nothing else: "
    "3, 1, 4, 1, 5, 9, 2, 6"
)
PROBE_MAX_TOKENS = 48
PROBE_SEED = 1234
PROBE_STABLE = "determinism probe stable"  # the note when there is nothing to report
PROBE_HASH = hashlib.sha256(f"{PROBE_PROMPT}|{PROBE_MAX_TOKENS}|{PROBE_SEED}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ProbeResult:
    model: str
    digest: str
    first: str
    second: str
    previous: str | None = None  # the last run's first answer for this model
    previous_run: str | None = None
    previous_digest: str | None = None

    @property
    def findings(self) -> list[str]:
        """What a person should know; empty when the stack behaved deterministically and unchanged."""
        notes = []
        if self.first != self.second:
            notes.append(
                f"{self.model}: not deterministic at temperature 0 (two answers differ within this run); "
                "pass rates will vary more than the sampling settings suggest"
            )
        if self.previous is not None and self.previous != self.first:
            what = (
                "the weights changed (digest differs)"
                if self.previous_digest != self.digest
                else "same weights, so the runtime, its version or the driver changed"
            )
            notes.append(f"{self.model}: probe answer drifted since run {self.previous_run}: {what}")
        return notes


def ask_twice(backend: Backend) -> tuple[str, str]:
    """The probe prompt sent twice, greedy and seeded."""
    request = ChatRequest(
        messages=[{"role": "user", "content": PROBE_PROMPT}],
        temperature=0.0,
        seed=PROBE_SEED,
        max_tokens=PROBE_MAX_TOKENS,
        timeout_s=120.0,
    )
    first = backend.chat(request).content.strip()
    second = backend.chat(request).content.strip()
    return first, second


def run_probe(
    backend: Backend, model: str, digest: str, previous: tuple[str, str, str] | None
) -> tuple[str | None, str]:
    """Ask twice and judge against `previous` (run id, digest, answer of the last run's probe).

    Returns the answer to record (None when the probe could not run) and the one-line note.
    """
    try:
        first, second = ask_twice(backend)
    except InfraError as exc:
        return None, f"{model}: determinism probe not run ({exc})"
    last_run, last_digest, last_answer = previous if previous else (None, None, None)
    result = ProbeResult(model, digest, first, second, last_answer, last_run, last_digest)
    return first, "; ".join(result.findings) or f"{model}: {PROBE_STABLE}"
