"""The plain records everything downstream of a run reads.

An attempt's record is built on the worker, travels to the controller as a plain dict on the
TestReport (pytest-xdist serializes it with execnet), and is written to the results file. Nothing
here holds a live object, so a saved results file can be re-analysed later with the same code.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

RESULTS_SCHEMA = "agentloop.results/1"


class Outcome(StrEnum):
    """Exactly one per attempt (DESIGN.md's vocabulary)."""

    PASSED = "passed"
    FAILED = "failed"  # declared done, checks not met
    BUDGET_EXCEEDED = "budget_exceeded"  # see Limit
    NO_TOOL_CALLS = "no_tool_calls"  # never produced a usable tool call
    ESCALATED = "escalated"  # asked for a human on a task that was doable
    INFRA_ERROR = "infra_error"  # the runtime or harness broke: never counted against the model


class Limit(StrEnum):
    TURNS = "turns"
    TOKENS = "tokens"
    TIME = "time"


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0

    @property
    def total(self) -> int:
        return self.prompt_tokens + self.completion_tokens


CallSource = Literal["native", "text"]
MalformedKind = Literal["bad_json", "unknown_tool", "bad_arguments", "truncated"]


class ToolCall(BaseModel):
    """A call the harness could parse and validate."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    source: CallSource = "native"  # "text": recovered from the message content


class MalformedCall(BaseModel):
    """A call the harness could not use; the model is told why and may try again."""

    kind: MalformedKind
    raw: str
    error: str
    source: CallSource = "native"


class ToolResult(BaseModel):
    call_id: str
    name: str
    ok: bool
    output: str
    redundant: bool = False  # same tool and arguments as an earlier call, nothing changed since
    changed: bool = False  # the call changed the workspace or origin


class Turn(BaseModel):
    """One request to the model and what came of it."""

    index: int
    request_messages: int
    request_chars: int
    content: str = ""
    reasoning: str | None = None
    calls: list[ToolCall] = Field(default_factory=list)
    malformed: list[MalformedCall] = Field(default_factory=list)
    results: list[ToolResult] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    finish_reason: str | None = None
    native_tool_calls: int = 0  # calls the runtime itself parsed into `tool_calls`
    context_truncated: bool = False  # the server evaluated less than the history sent (truncation.py)
    # The server sent no `usage`: `usage` then holds the harness's estimate (characters / 4).
    usage_estimated: bool = False
    retries: list[str] = Field(default_factory=list)  # why each failed try before this reply failed
    # Serving telemetry (None where neither the server said nor the harness could measure it):
    ttft_s: float | None = None  # time to first token: latency minus the server's decode time
    prefill_tps: float | None = None  # prompt tokens evaluated per second
    decode_tps: float | None = None  # generated tokens per second


class FailedRequest(BaseModel):
    """A request that brought no reply: a dead or hung server, or one cut off by the time budget."""

    turn: int  # the turn it would have been
    request_messages: int
    request_chars: int
    seconds: float  # wall time lost in it, retries included
    error: str
    cut_off: bool = False  # the attempt's time budget ended it, not the server


class Transcript(BaseModel):
    spec: str = ""
    system_prompt: str = ""
    turns: list[Turn] = Field(default_factory=list)
    failed_requests: list[FailedRequest] = Field(default_factory=list)
    final_diff: str = ""
    check_output: str = ""
    # An external agent's end: exit status or signal, and the last lines of its stdout and stderr.
    agent_stop: str = ""


class Attempt(BaseModel):
    """One model × cell × repetition of one canary, graded."""

    model_config = ConfigDict(use_enum_values=False)

    canary: str
    tier: str
    model: str
    cell: str
    repetition: int
    outcome: Outcome
    limit: Limit | None = None
    reason: str = ""
    # Counters are None (null) when the agent could not report them: an external agent without a
    # transcript. Never 0 in that case: 0 would claim a measurement nobody made.
    turns: int | None = 0
    tool_calls: int | None = 0
    malformed_tool_calls: int | None = 0
    redundant_tool_calls: int | None = 0
    text_tool_calls: int | None = 0
    prompt_tokens: int | None = 0
    completion_tokens: int | None = 0
    wall_s: float = 0.0
    model_s: float = 0.0
    # Partial credit, measured against the starting repo: of the hidden checks the untouched repo
    # fails, how many pass on origin (None when the checks never ran). Checks the starting repo
    # already passes are never the model's work: they are counted apart in checks_baseline.
    checks_passed: int | None = None
    checks_total: int | None = None
    checks_baseline: int | None = None
    pushed: bool = False
    infra_retries: int = 0
    started: datetime | None = None
    finished: datetime | None = None
    # Audit trail: what exactly was evaluated.
    canary_hash: str = ""
    cell_config: dict[str, Any] = Field(default_factory=dict)
    # The limits in force (the canary's, overridden by the cell's): tells a raised budget from a cut.
    budget: dict[str, float] = Field(default_factory=dict)
    model_info: dict[str, Any] = Field(default_factory=dict)
    host: str | None = None
    # Replies cut at max_response_tokens (finish_reason "length"); None when the agent cannot say.
    truncated_replies: int | None = 0
    # The token count the budget was enforced on when a server sent no `usage` (characters / 4):
    # prompt_tokens and completion_tokens are then null, never a 0 nobody measured.
    estimated_tokens: int | None = None
    infra_s: float = 0.0  # wall time lost in requests that failed (the server's, not the model's)
    infra_reasons: list[str] = Field(default_factory=list)  # why each retried try was infra
    # Serving telemetry: median time to first token, prompt and generation rates over the attempt;
    # `telemetry` says where they come from ("server": its own timings; "measured": wall time).
    ttft_s: float | None = None
    prefill_tps: float | None = None
    decode_tps: float | None = None
    telemetry: str | None = None
    # The runtime silently cut a prompt to fit its context (truncation.py): the failure is the
    # context's, not the model's. None when no turn reported a prompt-token count.
    context_truncated: bool | None = None
    transcript: Transcript | None = None
    # What the analyses read from a transcript the run's owner moved to disk (analysis/facts.py):
    # never serialized, so records and results files are the same with or without it.
    _kept_facts: Any = PrivateAttr(default=None)

    @property
    def kept_facts(self) -> Any:
        return self._kept_facts

    def without_transcript(self, facts: Any) -> Attempt:
        """A copy that keeps `facts` (the transcript's counts) in place of the transcript itself."""
        slim = self.model_copy(update={"transcript": None})
        slim._kept_facts = facts
        return slim

    @property
    def tokens(self) -> int | None:
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens

    def to_record(self, *, with_transcript: bool = False) -> dict[str, Any]:
        """A JSON-ready dict: the form that travels on reports and lands in results files."""
        exclude = None if with_transcript else {"transcript"}
        return self.model_dump(mode="json", exclude=exclude)

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Attempt:
        return cls.model_validate(data)
