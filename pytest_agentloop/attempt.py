"""One attempt, start to finish: workspace, agent, grading, record.

This is the whole per-item pipeline without pytest in it, so the canary-suite tests, the
benchmarks and the pytest items all run attempts the same way. No attempt is ever lost: whatever
goes wrong inside one (a harness bug in the tools, the grading, the workspace) ends it as an
infra_error record naming the error; only a usage error (BackendError) stops it, for the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter
from typing import Any

from pytest_agentloop.agent.base import Agent, AgentTask, AttemptBudget, Episode, harness_error
from pytest_agentloop.agent.tools import Toolbox
from pytest_agentloop.backends.base import BackendError
from pytest_agentloop.canary import Canary
from pytest_agentloop.cells import BASELINE, Cell
from pytest_agentloop.grading import Grade, grade, unmet_requirements
from pytest_agentloop.records import Attempt, Outcome, Transcript
from pytest_agentloop.sandbox import SandboxPolicy
from pytest_agentloop.truncation import mark_truncation
from pytest_agentloop.workspace import Workspace

# Given the built-in grade, returns a replacement or None (the `pytest_agentloop_grade` hook).
Review = Callable[[Canary, Workspace, Episode, Grade], "Grade | None"]


def run_attempt(
    canary: Canary,
    agent: Agent,
    *,
    model: str,
    cell: Cell = BASELINE,
    repetition: int = 1,
    limits: SandboxPolicy | None = None,
    keep: bool = False,
    parent: Path | None = None,
    infra_retries: int = 0,
    host: str | None = None,
    model_info: Mapping[str, Any] | None = None,
    review: Review | None = None,
) -> Attempt:
    """Run, grade and record one attempt; an infra_error is retried up to `infra_retries` times.

    With `keep`, the workspace of an attempt that did not pass is left on disk and named in the
    reason, so a person can look at what the agent did. `review` (the `pytest_agentloop_grade`
    hook) may replace the built-in grade while the workspace still exists.
    """
    limits = limits or SandboxPolicy()
    started = datetime.now(UTC)
    clock = perf_counter()
    retries, infra_reasons, infra_s = 0, [], 0.0
    while True:
        episode, result, kept_at = _one_try(canary, agent, cell, limits, keep, parent, review)
        infra_s += episode.infra_s
        if result.outcome is not Outcome.INFRA_ERROR or retries >= infra_retries:
            break
        retries += 1
        infra_reasons.append(result.reason)
    reason = result.reason + (f" (workspace kept at {kept_at})" if kept_at else "")
    transcript = episode.transcript.model_copy(
        update={"final_diff": result.diff, "check_output": result.check_output}
    )
    return _attempt(
        canary,
        model,
        cell,
        repetition,
        outcome=result.outcome,
        limit=result.limit,
        reason=reason,
        **_counters(episode),
        wall_s=round(perf_counter() - clock, 3),
        model_s=round(episode.model_s, 3),
        checks_passed=result.checks_passed,
        checks_total=result.checks_total,
        checks_baseline=result.checks_baseline,
        pushed=result.pushed,
        infra_retries=retries,
        infra_reasons=infra_reasons,
        infra_s=round(infra_s, 3),
        started=started,
        finished=datetime.now(UTC),
        budget=asdict(AttemptBudget.for_attempt(canary, cell)),
        model_info={**(model_info or {}), **episode.fingerprint},
        host=host,
        estimated_tokens=_estimated_tokens(episode),
        **episode.serving.fields(),
        context_truncated=mark_truncation(transcript),
        transcript=transcript,
    )


def infra_attempt(
    canary: Canary, model: str, cell: Cell, repetition: int, reason: str, *, host: str | None = None
) -> Attempt:
    """The record of an attempt the host broke before it began (a failed lease or model listing)."""
    now = datetime.now(UTC)
    return _attempt(
        canary,
        model,
        cell,
        repetition,
        outcome=Outcome.INFRA_ERROR,
        reason=reason,
        started=now,
        finished=now,
        host=host,
        transcript=Transcript(),
    )


def _attempt(canary: Canary, model: str, cell: Cell, repetition: int, **fields: Any) -> Attempt:
    """The record of one repetition of a canary × model × cell: what identifies it (and ties it to the
    canary's content and the cell's settings) taken from them, the rest as given."""
    return Attempt(
        canary=canary.id,
        tier=canary.tier,
        model=model,
        cell=cell.id,
        repetition=repetition,
        canary_hash=canary.content_hash,
        cell_config=cell.config(),
        **fields,
    )


def _counters(episode: Episode) -> dict[str, int | None]:
    """The episode's counters, with those the agent could not report as None rather than 0."""
    counters: dict[str, int | None] = {
        "turns": episode.turns,
        "tool_calls": episode.tool_calls,
        "malformed_tool_calls": episode.malformed_tool_calls,
        "redundant_tool_calls": episode.redundant_tool_calls,
        "text_tool_calls": episode.text_tool_calls,
        "prompt_tokens": episode.prompt_tokens,
        "completion_tokens": episode.completion_tokens,
        "truncated_replies": episode.truncated_replies,
    }
    unknown = set(episode.unknown)
    if episode.tokens_estimated:  # the budget ran on an estimate; the record says unknown
        unknown |= {"prompt_tokens", "completion_tokens"}
    return {name: None if name in unknown else value for name, value in counters.items()}


def _estimated_tokens(episode: Episode) -> int | None:
    """The token total the budget ran on when some reply came without usage (else None)."""
    return episode.prompt_tokens + episode.completion_tokens if episode.tokens_estimated else None


def _one_try(
    canary: Canary,
    agent: Agent,
    cell: Cell,
    limits: SandboxPolicy,
    keep: bool,
    parent: Path | None,
    review: Review | None,
) -> tuple[Episode, Grade, Path | None]:
    episode: Episode | None = None
    try:
        limits = limits.for_canary(canary)  # the canary's [sandbox] needs: network, image
        with Workspace.create(canary, parent) as workspace:
            budget = AttemptBudget.for_attempt(canary, cell)
            toolbox = Toolbox(workspace, canary.spec.test_command, limits, seconds=budget.seconds)
            task = AgentTask(canary=canary, cell=cell, budget=budget, toolbox=toolbox)
            episode = unmet_requirements(canary, limits) or agent.run(task)
            result = grade(canary, workspace, episode, limits)
            if review is not None:
                result = review(canary, workspace, episode, result) or result
            workspace.keep = keep and result.outcome is not Outcome.PASSED
            return episode, result, workspace.root if workspace.keep else None
    except BackendError:  # a usage error: the run stops with its one line
        raise
    except Exception as exc:  # anything else is the harness's fault: recorded, never lost
        failed = Grade(Outcome.INFRA_ERROR, None, harness_error(exc), None, None, "", False, "")
        return episode or Episode(end="infra_error", transcript=Transcript()), failed, None
