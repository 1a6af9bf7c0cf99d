"""What an agent is given and what it hands back, before grading.

An agent drives one attempt: the built-in loop talks to a model, the pseudo-agents replay the
reference solution or quit at once, an external agent runs a command. All of them act on the
workspace only through the same `Toolbox`, so their transcripts and counters mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from pytest_agentloop.canary import Canary
from pytest_agentloop.cells import Cell
from pytest_agentloop.records import Limit, Transcript
from pytest_agentloop.telemetry import Serving

if TYPE_CHECKING:
    from pytest_agentloop.agent.tools import Toolbox

EndReason = Literal["finished", "escalated", "budget_exceeded", "infra_error"]
HARNESS_ERROR_CHARS = 300


def harness_error(exc: BaseException) -> str:
    """The reason of an attempt a harness bug ended: its class and message, one line, never a traceback."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= HARNESS_ERROR_CHARS else text[: HARNESS_ERROR_CHARS - 1] + "…"
    return f"harness error: {type(exc).__name__}" + (f": {text}" if text else "")


@dataclass(frozen=True)
class Budget:
    """The limits in force for one attempt (the canary's, overridden by the cell's)."""

    turns: int
    tokens: int
    seconds: float

    @classmethod
    def for_attempt(cls, canary: Canary, cell: Cell) -> Budget:
        return cls(
            turns=cell.settings.turns or canary.spec.budget.turns,
            tokens=cell.settings.tokens or canary.spec.budget.tokens,
            seconds=canary.spec.budget.seconds,
        )


@dataclass
class Episode:
    """How the agent's run ended, with its transcript and counters; grading turns it into an Outcome."""

    end: EndReason
    transcript: Transcript
    limit: Limit | None = None
    reason: str = ""  # the agent's own words for finish/escalate, or what broke
    tool_calls: int = 0
    malformed_tool_calls: int = 0
    redundant_tool_calls: int = 0
    text_tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_s: float = 0.0
    truncated_replies: int = 0  # replies cut at max_response_tokens (finish_reason "length")
    tokens_estimated: bool = False  # some reply came without usage: the token counts are estimates
    infra_s: float = 0.0  # wall time lost in failed requests
    serving: Serving = field(default_factory=Serving)
    fingerprint: dict[str, object] = field(default_factory=dict)
    # Counters the agent could not report (an external agent without a transcript): recorded as
    # null in the Attempt, never as 0.
    unknown: tuple[str, ...] = ()

    @property
    def turns(self) -> int:
        return len(self.transcript.turns)


class Agent(Protocol):
    """Anything that can attempt a canary through a Toolbox within a Budget."""

    def run(self, task: AgentTask) -> Episode: ...


@dataclass
class AgentTask:
    canary: Canary
    cell: Cell
    budget: Budget
    toolbox: Toolbox
