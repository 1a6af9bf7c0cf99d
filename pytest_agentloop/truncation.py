"""Silent context truncation: a prompt the runtime cut to fit its context, seen in its own token counts.

Runtimes cut an over-long prompt without an error: Ollama drops the oldest messages to fit `num_ctx`
(server/prompt.go) and its runner cuts what still does not fit; a model then works without the task
or its early findings, and the failure looks like a capability one. A reply's prompt-token count is
what the server evaluated. An agent's history only grows, so each turn's count must grow with the
characters added since the turn before; a turn whose count grew far less than that (or shrank) was
cut, and so is the attempt.
"""

from __future__ import annotations

from collections.abc import Sequence

from pytest_agentloop.records import Transcript, Turn

# No tokenizer averages more characters per token than this over a message (code and English run at
# 3-4): a count that grew by less than added/12 cannot hold what was added.
CHARS_PER_TOKEN_MAX = 12
# Below this many added characters, template tokens dominate the growth and the test says nothing.
MIN_ADDED_CHARS = 240


def truncated_turns(turns: Sequence[Turn]) -> list[int]:
    """Indexes of the turns whose prompt the server evaluated shorter than the history it was sent.

    Each turn is measured against the last turn known whole: small additions accumulate until they
    are large enough to tell. A turn without a reported prompt count is skipped; reasoning is not
    counted as added, since chat templates may drop earlier thinking legitimately.
    """
    flagged: list[int] = []
    whole: Turn | None = None
    thinking = 0  # reasoning characters sent since `whole`
    for turn in turns:
        if not turn.usage.prompt_tokens or turn.usage_estimated:  # an estimate says nothing of a cut
            continue
        if whole is None:
            whole = turn
        else:
            added = turn.request_chars - whole.request_chars - thinking
            grew = turn.usage.prompt_tokens - whole.usage.prompt_tokens
            if added >= MIN_ADDED_CHARS and grew < added / CHARS_PER_TOKEN_MAX:
                flagged.append(turn.index)
            elif added >= MIN_ADDED_CHARS:
                whole, thinking = turn, 0
        thinking += len(turn.reasoning or "")
    return flagged


def mark_truncation(transcript: Transcript) -> bool | None:
    """Flag the cut turns in `transcript`; True if any was cut, None when no turn reported its count."""
    if not any(turn.usage.prompt_tokens and not turn.usage_estimated for turn in transcript.turns):
        return None
    cut = set(truncated_turns(transcript.turns))
    for turn in transcript.turns:
        turn.context_truncated = turn.index in cut
    return bool(cut)
