"""The agent loop: ask the model, run the calls it makes, feed the results back, until it finishes,
escalates, or a budget (turns, tokens, wall time) runs out.

The harness's own cost per turn must stay flat as the history grows (a run can reach hundreds of
turns), so the history's size is kept as a running total and nothing re-serializes it per turn.

A hung or dead server is never scored against the model: every request (with its retries) shares
the attempt's remaining time, a request that fails is recorded in the transcript with its reasons,
and the time it lost is infra (a request the budget cut off counts as lost when it ran HUNG_FACTOR
times longer than the slowest reply before it). An attempt whose model never answered within the
budget, or whose budget went to failed requests beyond INFRA_SHARE, is an infra_error, not a model
outcome. A server that sends
no `usage` leaves the token counts unknown; the token budget is then enforced on an estimate
(`base.estimate_usage`). Anything unexpected inside the loop ends the episode as an
infra_error naming the harness error, with the transcript so far.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from pytest_agentloop import progress
from pytest_agentloop.agent import prompts
from pytest_agentloop.agent.base import AgentTask, EndReason, Episode, estimate_usage, harness_error
from pytest_agentloop.agent.calls import ParsedCalls, parse_reply
from pytest_agentloop.agent.tools import TOOL_ARGS
from pytest_agentloop.backends.base import Backend, BackendError, ChatRequest, ChatResponse, InfraError
from pytest_agentloop.cells import CellSettings
from pytest_agentloop.records import FailedRequest, Limit, ToolResult, Transcript, Turn

REQUEST_TIMEOUT_S = 300.0  # the cap on one try; all tries of a request share the attempt's time left
INFRA_SHARE = 0.1  # a time budget that ran out with more than this share lost to failed requests: infra
# A request the budget cut off after running this many times longer than the attempt's slowest
# answered one is a hung server, not a slow model: its time counts as lost (infra).
HUNG_FACTOR = 10.0
_THINK = re.compile(r"<think>.*?(</think>|$)", re.DOTALL)


class _History:
    """The messages sent each turn, with their character count kept as a running total."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.chars = 0

    def add(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.chars += len(message.get("content") or "") + len(message.get("reasoning_content") or "")
        for call in message.get("tool_calls", ()):
            self.chars += len(call["function"]["name"]) + len(call["function"]["arguments"])


class LoopAgent:
    """The real agent: a model behind `backend`, driven through the task's Toolbox."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def run(self, task: AgentTask) -> Episode:
        settings = task.cell.settings
        schemas = task.toolbox.schemas()
        system = prompts.system_prompt(schemas, settings.tool_mode, settings.directives)
        spec = prompts.task_message(task.canary)
        episode = Episode(end="budget_exceeded", transcript=Transcript(spec=spec, system_prompt=system))
        try:
            return self._run(task, episode, schemas, system, spec)
        except BackendError:  # the user's to fix (a refused key, a request the server never accepts)
            raise
        except Exception as exc:  # a harness bug must cost one infra_error, never the attempt's record
            return _ended(episode, "infra_error", reason=harness_error(exc))

    def _run(
        self, task: AgentTask, episode: Episode, schemas: list[dict[str, Any]], system: str, spec: str
    ) -> Episode:
        settings = task.cell.settings
        history = _History()
        history.add({"role": "system", "content": system})
        history.add({"role": "user", "content": spec})
        json_schema = prompts.constrained_schema(schemas) if settings.tool_mode == "constrained" else None
        tools = schemas if settings.tool_mode == "native" else []
        budget_s = task.budget.seconds
        deadline = time.monotonic() + budget_s
        for index in range(task.budget.turns):
            left = deadline - time.monotonic()
            if left <= 0:
                return _time_up(episode, budget_s)
            request = _request(
                settings, history.messages, tools, json_schema, min(REQUEST_TIMEOUT_S, left), deadline
            )
            sent_messages, sent_chars = len(history.messages), history.chars
            asked = time.monotonic()
            try:
                response = self.backend.chat(request)
            except InfraError as exc:
                failed = FailedRequest(
                    turn=index,
                    request_messages=sent_messages,
                    request_chars=sent_chars,
                    seconds=round(time.monotonic() - asked, 3),
                    error=str(exc),
                    cut_off=exc.cut_off,
                )
                episode.transcript.failed_requests.append(failed)
                if not exc.cut_off:
                    episode.infra_s += failed.seconds
                    return _ended(episode, "infra_error", reason=str(exc))
                episode.infra_s += exc.lost_s  # the tries that failed before the budget cut the last one
                slowest = max((turn.latency_s for turn in episode.transcript.turns), default=0.0)
                if failed.seconds - exc.lost_s > HUNG_FACTOR * slowest:
                    episode.infra_s += failed.seconds - exc.lost_s
                return _time_up(episode, budget_s)
            parsed = parse_reply(response, TOOL_ARGS, f"call_{index}")
            results = _execute(task, parsed)
            _feed_back(history, settings, response, parsed, results)
            _record(episode, index, sent_messages, sent_chars, response, parsed, results)
            tokens = episode.prompt_tokens + episode.completion_tokens
            elapsed = time.monotonic() - (deadline - task.budget.seconds)
            progress.turn_done(progress.TurnReport(index + 1, task.budget.turns, tokens, elapsed))
            if task.toolbox.ended:
                return _ended(episode, task.toolbox.ended, reason=task.toolbox.end_message)
            if episode.prompt_tokens + episode.completion_tokens > task.budget.tokens:
                estimated = " (estimated: the server reported no usage)" if episode.tokens_estimated else ""
                why = f"tokens budget exhausted{estimated}"
                return _ended(episode, "budget_exceeded", limit=Limit.TOKENS, reason=why)
        return _ended(episode, "budget_exceeded", limit=Limit.TURNS)


def _time_up(episode: Episode, budget_s: float) -> Episode:
    """The time budget ran out: the model's outcome only if it answered and the budget went to it."""
    if episode.turns == 0:
        return _ended(
            episode,
            "infra_error",
            reason=(
                f"no reply within the {budget_s:g}s time budget: the server is hung or overloaded, or the "
                "model is far too slow for this budget (the cut-off request is in the transcript)"
            ),
        )
    if episode.infra_s > INFRA_SHARE * budget_s:
        reasons = "; ".join(
            dict.fromkeys(
                [r for turn in episode.transcript.turns for r in turn.retries]
                + [f.error for f in episode.transcript.failed_requests]
            )
        )
        return _ended(
            episode,
            "infra_error",
            reason=(
                f"the {budget_s:g}s time budget ran out with {episode.infra_s:.1f}s of it lost in failed "
                f"requests: {reasons or 'see the transcript'}"
            ),
        )
    return _ended(episode, "budget_exceeded", limit=Limit.TIME)


def _request(
    settings: CellSettings,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    json_schema: dict[str, Any] | None,
    timeout_s: float,
    deadline: float,
) -> ChatRequest:
    return ChatRequest(
        messages=messages,
        tools=tools,
        temperature=settings.temperature,
        top_p=settings.top_p,
        max_tokens=settings.max_response_tokens,
        seed=settings.seed,
        reasoning=settings.reasoning,
        json_schema=json_schema,
        timeout_s=timeout_s,
        deadline=deadline,
    )


def _execute(task: AgentTask, parsed: ParsedCalls) -> list[ToolResult]:
    """Run the valid calls in order; nothing runs after finish or escalate."""
    results = []
    for call in parsed.calls:
        results.append(task.toolbox.execute(call))
        if task.toolbox.ended:
            break
    return results


def _feed_back(
    history: _History,
    settings: CellSettings,
    response: ChatResponse,
    parsed: ParsedCalls,
    results: list[ToolResult],
) -> None:
    """Append the model's reply and what came of it, in the shape its tool mode expects."""
    content = response.content if settings.echo_reasoning else _THINK.sub("", response.content).strip()
    assistant: dict[str, Any] = {"role": "assistant", "content": content}
    if settings.echo_reasoning and response.reasoning:
        assistant["reasoning_content"] = response.reasoning
    native = bool(results) and parsed.calls[0].source == "native"
    if native:
        assistant["tool_calls"] = [
            {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(call.arguments)},
            }
            for call in parsed.calls[: len(results)]
        ]
    history.add(assistant)
    if native:
        for result in results:
            history.add({"role": "tool", "tool_call_id": result.call_id, "content": result.output})
        if parsed.malformed:
            history.add({"role": "user", "content": "\n\n".join(prompts.malformed_texts(parsed.malformed))})
    else:
        history.add({"role": "user", "content": prompts.results_message(results, parsed.malformed)})


def _record(
    episode: Episode,
    index: int,
    sent_messages: int,
    sent_chars: int,
    response: ChatResponse,
    parsed: ParsedCalls,
    results: list[ToolResult],
) -> None:
    usage = response.usage or estimate_usage(sent_chars, response)
    telemetry = episode.serving.add(response, None if response.usage is None else usage.completion_tokens)
    episode.transcript.turns.append(
        Turn(
            index=index,
            request_messages=sent_messages,
            request_chars=sent_chars,
            content=response.content,
            reasoning=response.reasoning,
            calls=parsed.calls,
            malformed=parsed.malformed,
            results=results,
            usage=usage,
            latency_s=response.latency_s,
            finish_reason=response.finish_reason,
            native_tool_calls=len(response.tool_calls),
            usage_estimated=response.usage is None,
            retries=response.retries,
            ttft_s=telemetry.ttft_s,
            prefill_tps=telemetry.prefill_tps,
            decode_tps=telemetry.decode_tps,
        )
    )
    episode.count_reply(response, parsed, usage, redundant=sum(r.redundant for r in results))
    episode.infra_s += response.infra_s


def _ended(episode: Episode, end: EndReason, *, limit: Limit | None = None, reason: str = "") -> Episode:
    episode.end, episode.limit, episode.reason = end, limit, reason
    if limit is not None and not reason:
        episode.reason = f"{limit.value} budget exhausted"
    return episode
