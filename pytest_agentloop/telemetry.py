"""Serving telemetry: time to first token, prefill and decode rates per turn and per attempt, and the
flag for a run whose throughput fell below its own start (the seeds' sign of VRAM pressure or
thermal throttling).

The server's own timings are used where it reports them (llama.cpp `timings`, Ollama's durations):
time to first token is then the reply's latency minus the server's decode time. Where it reports
none, the decode rate is measured on the wall clock (completion tokens / latency, which includes
prefill and queueing, so it reads low), and prefill and first token stay unknown.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_agentloop.backends.base import ChatResponse
from pytest_agentloop.records import Attempt

DROP_RATIO = 0.7  # the last attempts' decode rate below this share of the first ones' is flagged
DROP_WINDOW = 3  # attempts at least in each of the start and end windows


@dataclass(frozen=True)
class TurnTelemetry:
    ttft_s: float | None = None
    prefill_tps: float | None = None
    decode_tps: float | None = None


def _rate(tokens: float, seconds: float) -> float | None:
    return round(tokens / seconds, 2) if seconds > 0 and tokens > 0 else None


@dataclass
class Serving:
    """The telemetry of one attempt's replies, summed so rates weigh each reply by its tokens."""

    server: list[float] = field(default_factory=lambda: [0, 0.0, 0, 0.0])  # prefill n, s, decode n, s
    measured: list[float] = field(default_factory=lambda: [0, 0.0])  # completion tokens, latency s
    ttfts: list[float] = field(default_factory=list)

    def add(self, response: ChatResponse, completion_tokens: int | None) -> TurnTelemetry:
        """Fold one reply in and return its own figures (for the transcript's turn)."""
        timing = response.timing
        if timing is not None and timing.decode_s is not None and timing.decode_tokens is not None:
            ttft = max(0.0, response.latency_s - timing.decode_s)
            self.ttfts.append(ttft)
            self.server[2] += timing.decode_tokens
            self.server[3] += timing.decode_s
            prefill = None
            if timing.prefill_s is not None and timing.prefill_tokens is not None:
                self.server[0] += timing.prefill_tokens
                self.server[1] += timing.prefill_s
                prefill = _rate(timing.prefill_tokens, timing.prefill_s)
            return TurnTelemetry(round(ttft, 3), prefill, _rate(timing.decode_tokens, timing.decode_s))
        if completion_tokens:
            self.measured[0] += completion_tokens
            self.measured[1] += response.latency_s
            return TurnTelemetry(decode_tps=_rate(completion_tokens, response.latency_s))
        return TurnTelemetry()

    def fields(self) -> dict[str, Any]:
        """The attempt's `ttft_s`, `prefill_tps`, `decode_tps` and where they come from."""
        if self.server[3] > 0:
            return {
                "ttft_s": round(statistics.median(self.ttfts), 3) if self.ttfts else None,
                "prefill_tps": _rate(self.server[0], self.server[1]),
                "decode_tps": _rate(self.server[2], self.server[3]),
                "telemetry": "server",
            }
        decode = _rate(self.measured[0], self.measured[1])
        return {"decode_tps": decode, "telemetry": "measured" if decode is not None else None}


def _median(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def throughput_drop(attempts: Sequence[Attempt]) -> str | None:
    """One line when the decode rate of the last attempts fell below DROP_RATIO of the first ones'
    (medians of a third of the attempts each, at least DROP_WINDOW), in the order they started."""
    timed = sorted(
        (a.started, a.decode_tps) for a in attempts if a.decode_tps is not None and a.started is not None
    )
    window = max(DROP_WINDOW, len(timed) // 3)
    if len(timed) < 2 * window:
        return None
    start = statistics.median(rate for _, rate in timed[:window])
    end = statistics.median(rate for _, rate in timed[-window:])
    if end >= DROP_RATIO * start:
        return None
    return (
        f"throughput fell: decode {end:.1f} tok/s over the last {window} attempts against {start:.1f} over "
        f"the first {window} ({end / start - 1:+.0%}): VRAM pressure or thermal throttling?"
    )


def serving_lines(attempts: Iterable[Attempt]) -> list[str]:
    """Per model: median first token, prefill and decode rates, and the throughput flag if raised."""
    by_model: dict[str, list[Attempt]] = {}
    for attempt in attempts:
        by_model.setdefault(attempt.model, []).append(attempt)
    lines = []
    for model, own in sorted(by_model.items()):
        measured = [a for a in own if a.telemetry is not None]
        if not measured:
            continue
        ttft, prefill = _median(a.ttft_s for a in measured), _median(a.prefill_tps for a in measured)
        decode = _median(a.decode_tps for a in measured)
        sources = sorted({str(a.telemetry) for a in measured})
        figures = [
            f"first token {ttft:.2f}s" if ttft is not None else "first token -",
            f"prefill {prefill:.0f} tok/s" if prefill is not None else "prefill -",
            f"decode {decode:.1f} tok/s" if decode is not None else "decode -",
        ]
        how = " and ".join("server timings" if s == "server" else "wall clock" for s in sources)
        lines.append(f"{model}: {', '.join(figures)} (medians of {len(measured)} attempts; {how})")
        drop = throughput_drop(own)
        if drop:
            lines.append(f"{model}: {drop}")
    return lines
