"""What an agent is given and what it hands back, before grading.

An agent drives one attempt: the built-in loop talks to a model, the pseudo-agents replay the
reference solution or quit at once, an external agent runs a command. All of them act on the
workspace only through the same `Toolbox`, so their transcripts and counters mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pytest_agentloop.canary import Canary
from pytest_agentloop.cells import Cell
from pytest_agentloop.records import Limit, Transcript, Usage
from pytest_agentloop.telemetry import Serving

if TYPE_CHECKING:
    from pytest_agentloop.agent.calls import ParsedCalls
    from pytest_agentloop.agent.tools import Toolbox
    from pytest_agentloop.backends.base import ChatResponse

EndReason = Literal["finished", "escalated", "budget_exceeded", "infra_error"]
HARNESS_ERROR_CHARS = 300
CHARS_PER_TOKEN = 4  # the stated token estimate when a server reports no usage


def harness_error(exc: BaseException) -> str:
    """The reason of an attempt a harness bug ended: its class and message, one line, never a traceback."""
    text = " ".join(str(exc).split())
    text = text if len(text) <= HARNESS_ERROR_CHARS else text[: HARNESS_ERROR_CHARS - 1] + "…"
    return f"harness error: {type(exc).__name__}" + (f": {text}" if text else "")


@dataclass(frozen=True)
class AttemptBudget:
    """The limits in force for one attempt (the canary's, overridden by the cell's)."""

    turns: int
    tokens: int
    seconds: float

    @classmethod
    def for_attempt(cls, canary: Canary, cell: Cell) -> AttemptBudget:
        return cls(
            turns=cell.settings.turns or canary.spec.budget.turns,
            tokens=cell.settings.tokens or canary.spec.budget.tokens,
            seconds=canary.spec.budget.seconds,
        )


def estimate_usage(sent_chars: int, response: ChatResponse) -> Usage:
    """A reply's tokens when its server sent no `usage`: CHARS_PER_TOKEN characters a token of what was
    sent and what came back (text, reasoning, calls), so the token budget still holds. The built-in
    loop and the metering proxy both use it, so an estimated count means the same in either."""
    said = len(response.content) + len(response.reasoning or "")
    said += sum(len(c.name) + len(str(c.arguments)) for c in response.tool_calls)
    return Usage(prompt_tokens=sent_chars // CHARS_PER_TOKEN, completion_tokens=said // CHARS_PER_TOKEN)


@dataclass(kw_only=True)
class Counters:
    """What an agent's model replies added up to. The loop and the metering proxy count each reply
    with `count_reply`, so their counters mean the same thing."""

    tool_calls: int = 0
    malformed_tool_calls: int = 0
    redundant_tool_calls: int = 0
    text_tool_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_s: float = 0.0
    truncated_replies: int = 0  # replies cut at max_response_tokens (finish_reason "length")
    tokens_estimated: bool = False  # some reply came without usage: the token counts are estimates

    def count_reply(self, response: ChatResponse, parsed: ParsedCalls, usage: Usage, redundant: int) -> None:
        """Add one reply: its calls as parsed (`redundant` of them repeats), its tokens (`usage`, the
        server's or `estimate_usage`'s) and its model time (the server's, else the latency)."""
        self.tool_calls += len(parsed.calls)
        self.malformed_tool_calls += len(parsed.malformed)
        self.redundant_tool_calls += redundant
        self.text_tool_calls += sum(call.source == "text" for call in parsed.calls)
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        self.tokens_estimated |= response.usage is None
        self.truncated_replies += response.finish_reason == "length"
        self.model_s += response.model_s if response.model_s is not None else response.latency_s

    def counts(self) -> dict[str, Any]:
        """The counters alone, to hand from one holder to another (the meter's to an Episode)."""
        return {f.name: getattr(self, f.name) for f in fields(Counters)}


@dataclass
class Episode(Counters):
    """How the agent's run ended, with its transcript and counters; grading turns it into an Outcome."""

    end: EndReason
    transcript: Transcript
    limit: Limit | None = None
    reason: str = ""  # the agent's own words for finish/escalate, or what broke
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
    """Anything that can attempt a canary through a Toolbox within an AttemptBudget."""

    def run(self, task: AgentTask) -> Episode: ...


@dataclass
class AgentTask:
    canary: Canary
    cell: Cell
    budget: AttemptBudget
    toolbox: Toolbox
