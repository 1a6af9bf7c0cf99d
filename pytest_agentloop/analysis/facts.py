"""What the reports read from a transcript, in a few counts.

A transcript is most of an attempt's size (every turn's text and tool output). The run's owner on the
controller (results.Results) keeps transcripts on disk and only these counts in memory, so a campaign's
footprint stays flat; the analyses read the counts from `facts_of`, whether the attempt still carries
its transcript (a results file read back with transcripts) or only its facts (the live run).
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_agentloop.records import Attempt, Transcript, Turn

EDIT_TOOLS = frozenset({"write_file", "edit_file"})


@dataclass(frozen=True, slots=True)
class TranscriptFacts:
    malformed: int  # turns whose only calls were malformed
    redundant: int  # turns that only repeated earlier calls with nothing changed since
    noop: int  # turns whose edits changed nothing
    prose: int  # turns with no call at all, the closing answer excepted
    text_mismatch: bool  # calls arrived as text while the runtime returned no tool_calls
    cached_tokens: int  # prompt tokens the server served from its cache (priced apart)


def waste_kind(turn: Turn, *, final: bool) -> str | None:
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


def transcript_facts(transcript: Transcript) -> TranscriptFacts:
    counts = {"malformed": 0, "redundant": 0, "noop": 0, "prose": 0}
    turns = transcript.turns
    for position, turn in enumerate(turns):
        kind = waste_kind(turn, final=position == len(turns) - 1)
        if kind:
            counts[kind] += 1
    return TranscriptFacts(
        **counts,
        text_mismatch=any(
            turn.native_tool_calls == 0 and any(c.source == "text" for c in turn.calls) for turn in turns
        ),
        cached_tokens=sum(turn.usage.cached_tokens for turn in turns),
    )


def facts_of(attempt: Attempt) -> TranscriptFacts | None:
    """The attempt's transcript facts: from its transcript, or kept by the owner that dropped it; None
    when there never was a transcript (an external agent's, or one read back without them)."""
    if attempt.transcript is not None:
        return transcript_facts(attempt.transcript)
    kept = attempt.kept_facts
    return kept if isinstance(kept, TranscriptFacts) else None


def has_transcript(attempt: Attempt) -> bool:
    return attempt.transcript is not None or attempt.kept_facts is not None
