"""The agent loop: ask the model, run the calls it makes, feed the results back, until it finishes,
escalates, or a budget (turns, tokens, wall time) runs out.

The harness's own cost per turn must stay flat as the history grows (a run can reach hundreds of
turns), so the history's size is kept as a running total and nothing re-serializes it per turn.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from pytest_agentloop import progress
from pytest_agentloop.agent import prompts
from pytest_agentloop.agent.base import AgentTask, EndReason, Episode
from pytest_agentloop.agent.calls import ParsedCalls, parse_reply
from pytest_agentloop.agent.tools import TOOL_ARGS
from pytest_agentloop.backends.base import Backend, ChatRequest, ChatResponse, InfraError
from pytest_agentloop.cells import CellSettings
from pytest_agentloop.records import Limit, ToolResult, Transcript, Turn

REQUEST_TIMEOUT_S = 300.0
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
        history = _History()
        history.add({"role": "system", "content": system})
        history.add({"role": "user", "content": spec})
        json_schema = prompts.constrained_schema(schemas) if settings.tool_mode == "constrained" else None
        tools = schemas if settings.tool_mode == "native" else []
        deadline = time.monotonic() + task.budget.seconds
        for index in range(task.budget.turns):
            left = deadline - time.monotonic()
            if left <= 0:
                return _ended(episode, "budget_exceeded", limit=Limit.TIME)
            request = _request(settings, history.messages, tools, json_schema, min(REQUEST_TIMEOUT_S, left))
            sent_messages, sent_chars = len(history.messages), history.chars
            try:
                response = self.backend.chat(request)
            except InfraError as exc:
                if time.monotonic() >= deadline:
                    return _ended(episode, "budget_exceeded", limit=Limit.TIME)
                return _ended(episode, "infra_error", reason=str(exc))
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
                return _ended(episode, "budget_exceeded", limit=Limit.TOKENS)
        return _ended(episode, "budget_exceeded", limit=Limit.TURNS)


def _request(
    settings: CellSettings,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    json_schema: dict[str, Any] | None,
    timeout_s: float,
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
            usage=response.usage,
            latency_s=response.latency_s,
            finish_reason=response.finish_reason,
            native_tool_calls=len(response.tool_calls),
        )
    )
    episode.tool_calls += len(parsed.calls)
    episode.malformed_tool_calls += len(parsed.malformed)
    episode.redundant_tool_calls += sum(r.redundant for r in results)
    episode.text_tool_calls += sum(c.source == "text" for c in parsed.calls)
    episode.prompt_tokens += response.usage.prompt_tokens
    episode.completion_tokens += response.usage.completion_tokens
    episode.model_s += response.model_s if response.model_s is not None else response.latency_s


def _ended(episode: Episode, end: EndReason, *, limit: Limit | None = None, reason: str = "") -> Episode:
    episode.end, episode.limit, episode.reason = end, limit, reason
    if limit is not None and not reason:
        episode.reason = f"{limit.value} budget exhausted"
    return episode
