"""An agent that is a command line: your own loop or a CLI agent, evaluated on the same canaries.

The command runs with /bin/sh in the attempt's work tree, inside the sandbox, with the canary's
time budget as its time limit (docs/extending.md has the whole contract). It reads the spec on
stdin, and must commit and push its work like any agent: the hidden checks grade what reached
origin. Exit status 3 means it escalated (its last output line is the reason). Unlike run_tests,
its sandbox has the network (its model), `.git`, origin and `$AGENTLOOP_AGENT_DIR` writable (it
commits and pushes itself) and `$AGENTLOOP_ROOT` plus the table's `visible` paths read-only (its
program); the harness's git does not trust what it leaves in them (workspace.py).

When the agent has a model, it reaches it through a metering proxy (agent/metering.py) started for
the attempt: every request and reply there is a transcript turn, counted with the built-in loop's
parsers, and the turn and token budgets are enforced there. An agent without a model may write
its own JSON-lines transcript to `$AGENTLOOP_TRANSCRIPT`, one line per turn:

    {"content": "...", "tool_calls": [{"name": "write_file", "arguments": {...}, "ok": true,
     "output": "..."}], "usage": {"prompt_tokens": 812, "completion_tokens": 95}, "latency_s": 1.4}

Counters nobody measured are null, never zero. Why the agent stopped (exit status or signal, the
last lines of its stdout and stderr) is kept in the reason and the transcript; its full output is
in `agent/` beside the work tree. An agent that could not run, or stopped before its first model
call, is an `infra_error`: the model was never asked, so it cannot have failed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pytest_agentloop.agent.base import AgentTask, Episode
from pytest_agentloop.agent.metering import Meter, MeteringProxy
from pytest_agentloop.backends.base import Backend, BackendError, ModelSpec
from pytest_agentloop.records import Limit, ToolCall, ToolResult, Transcript, Turn, Usage
from pytest_agentloop.sandbox import SandboxResult, run_sandboxed

ESCALATE_EXIT = 3
# Without the proxy these are never measurable from outside the agent, so null.
UNSEEN = ("malformed_tool_calls", "redundant_tool_calls", "text_tool_calls", "truncated_replies")
REPORTED = ("turns", "tool_calls", "prompt_tokens", "completion_tokens")


class ExternalAgentSettings(BaseModel):
    """One `[agents.NAME]` table: evaluated with `--agent-model external:NAME`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: str = Field(
        min_length=1, description="Shell command run in the work tree; $AGENTLOOP_ROOT is the rootdir."
    )
    model: str | None = Field(
        None, description="Model spec the agent talks to; its URL and name go in the env."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for the command."
    )
    pass_env: list[str] = Field(
        default_factory=list, description="Names of the harness's variables passed through (e.g. API keys)."
    )
    visible: list[str] = Field(
        default_factory=list,
        description="Host paths the agent may read (its venv); $VARS expand, missing paths are skipped.",
    )


def external_settings(agents: Mapping[str, Any], name: str) -> ExternalAgentSettings:
    """The validated `[agents.NAME]` table, or a BackendError naming the table and the fix."""
    table = agents.get(name)
    if table is None:
        known = ", ".join(sorted(agents)) or "none"
        raise BackendError(
            f"external:{name}: no [agents.{name}] table in the configuration (defined: {known}); "
            f'add one with command = "..."'
        )
    try:
        return ExternalAgentSettings.model_validate(table)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        raise BackendError(
            f"[agents.{name}] setting '{key}': {error['msg']}; fix it in the configuration."
        ) from None


class TranscriptCall(BaseModel):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    ok: bool | None = None
    output: str = ""


class TranscriptLine(BaseModel):
    """One turn as the external agent reports it; unknown keys are ignored so formats can grow."""

    content: str = ""
    tool_calls: list[TranscriptCall] = Field(default_factory=list)
    usage: Usage | None = None
    latency_s: float = 0.0


class ExternalAgent:
    """Runs one command per attempt, behind a metering proxy when it has a model."""

    def __init__(
        self,
        command: str,
        *,
        env: Mapping[str, str] | None = None,
        model_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        model_info: Mapping[str, Any] | None = None,
        visible: Sequence[Path] = (),
    ) -> None:
        self.command = command
        self.env = dict(env or {})
        self.model_url = model_url
        self.model = model
        self.api_key = api_key
        self.model_info = dict(model_info or {})
        self.visible = tuple(visible)  # read-only in its sandbox: where its program lives

    def run(self, task: AgentTask) -> Episode:
        folder = task.toolbox.workspace.base / "agent"  # beside the work tree, so never committed
        folder.mkdir(exist_ok=True)
        spec_file = folder / "spec.md"
        spec_file.write_text(task.canary.spec.spec, encoding="utf-8")
        if self.model_url is None:
            return self._run(task, folder, None)
        meter = Meter(task.budget, workspace=task.toolbox.workspace.root)
        with MeteringProxy(self.model_url, meter, settings=task.cell.settings, api_key=self.api_key) as proxy:
            return self._run(task, folder, (proxy.url, meter))

    def _run(self, task: AgentTask, folder: Path, proxied: tuple[str, Meter] | None) -> Episode:
        limits = dataclasses.replace(task.toolbox.limits, timeout_s=task.budget.seconds)
        env = {**self.env, **self._contract_env(task, folder, proxied[0] if proxied else None)}
        workspace = task.toolbox.workspace
        # It commits and pushes itself, and talks to its model: .git, origin and the network are its.
        result = run_sandboxed(
            ["/bin/sh", "-c", f"{_REDIRECT}\n{self.command}"],
            workspace.root,
            limits,
            env=env,
            writable=(workspace.root / ".git", workspace.origin, folder),
            visible=self.visible,
            network=True,
        )
        return _episode(task, result, folder, proxied[1] if proxied else None)

    def _contract_env(self, task: AgentTask, folder: Path, url: str | None) -> dict[str, str]:
        env = {
            "AGENTLOOP_AGENT_DIR": str(folder),
            "AGENTLOOP_SPEC_FILE": str(folder / "spec.md"),
            "AGENTLOOP_TRANSCRIPT": str(folder / "transcript.jsonl"),
            "AGENTLOOP_CANARY": task.canary.id,
            "AGENTLOOP_TEST_COMMAND": task.canary.spec.test_command,
            "AGENTLOOP_MAX_TURNS": str(task.budget.turns),
            "AGENTLOOP_MAX_TOKENS": str(task.budget.tokens),
            "AGENTLOOP_SECONDS": f"{task.budget.seconds:g}",
            "AGENTLOOP_MAX_RESPONSE_TOKENS": str(task.cell.settings.max_response_tokens),
        }
        if url is not None:
            # The names OpenAI clients (the openai SDK, litellm, aider, ...) read for their base URL.
            env.update(AGENTLOOP_MODEL_URL=url, OPENAI_BASE_URL=url, OPENAI_API_BASE=url)
            env.setdefault("OPENAI_API_KEY", self.env.get("OPENAI_API_KEY", "agentloop-proxy"))
        if self.model is not None:
            env["AGENTLOOP_MODEL"] = self.model
        return env

    def fingerprint(self) -> dict[str, Any]:
        """The agent's command and, like a built-in agent's, its model's serving-stack fingerprint."""
        return {
            **self.model_info,
            "agent": "external",
            "command": self.command,
            "model": self.model,
            "model_url": self.model_url,
        }


# The agent's stdin is the spec; its stdout and stderr go to files beside the work tree.
_REDIRECT = (
    'exec 0<"$AGENTLOOP_SPEC_FILE" >"$AGENTLOOP_AGENT_DIR/stdout.log" 2>"$AGENTLOOP_AGENT_DIR/stderr.log"'
)
TAIL_LINES = 8
TAIL_CHARS = 1_500
COULD_NOT_START = {126: "not executable", 127: "command not found"}


@dataclass
class Stop:
    """How the agent's process ended, in words, with the last lines it wrote."""

    status: str  # "exit status 1", "killed by SIGSEGV", "killed at the time budget"
    stdout: str
    stderr: str

    @classmethod
    def of(cls, result: SandboxResult, folder: Path) -> Stop:
        return cls(_status(result), _tail(folder / "stdout.log"), _tail(folder / "stderr.log"))

    def brief(self) -> str:
        """The status and the last line of stderr (else stdout): enough for a reason line."""
        last = _last_line(self.stderr) or _last_line(self.stdout)
        return f"{self.status}: {last}" if last else f"{self.status}, no output"

    def last_words(self) -> str:
        """After a clean exit: the status and the agent's last line on stdout, where it says why it ended."""
        last = _last_line(self.stdout)
        return f"{self.status}: {last}" if last else f"{self.status}, no output"

    def full(self) -> str:
        return "\n".join(
            (
                self.status,
                "--- stdout (last lines) ---",
                self.stdout,
                "--- stderr (last lines) ---",
                self.stderr,
            )
        )


def _status(result: SandboxResult) -> str:
    if result.timed_out:
        return "killed at the time budget"
    code = result.exit_code
    if code is not None and code < 0:
        return result.killed or f"killed by signal {-code}"
    if code is not None and code > 128 and (name := _signal_name(code - 128)):
        return f"exit status {code} (killed by {name})"
    if code in COULD_NOT_START:
        return f"exit status {code} ({COULD_NOT_START[code]})"
    return result.killed or f"exit status {code}"


def _signal_name(number: int) -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def _tail(path: Path) -> str:
    """The last lines of a log without reading all of it."""
    if not path.is_file():
        return ""
    with path.open("rb") as log:
        log.seek(max(0, path.stat().st_size - 16_384))
        text = log.read().decode("utf-8", "replace")
    return "\n".join(text.rstrip().splitlines()[-TAIL_LINES:])[-TAIL_CHARS:]


def _episode(task: AgentTask, result: SandboxResult, folder: Path, meter: Meter | None) -> Episode:
    """How the run ended and what was counted: the proxy's meter, else the agent's own transcript."""
    stop = Stop.of(result, folder)
    lines, problem = read_transcript(folder / "transcript.jsonl")
    episode = _metered(task, meter) if meter is not None else _reported(task, lines)
    episode.transcript.agent_stop = stop.full()
    note = f" ({problem})" if problem else ""
    if meter is not None and meter.upstream_errors:
        note += f" (model server: {meter.upstream_errors[-1]})"
    asked = meter is not None and meter.requests > 0  # a request the model was still answering counts
    over = _over_budget(task, meter, lines)
    if result.exit_code in COULD_NOT_START:
        episode.end, episode.reason = "infra_error", f"the agent could not run: {stop.brief()}{note}"
    elif over is not None:
        episode.end, episode.limit, episode.reason = (
            "budget_exceeded",
            over[0],
            f"{over[1]}; {stop.brief()}{note}",
        )
    elif result.timed_out and (meter is None or asked):
        episode.end, episode.limit = "budget_exceeded", Limit.TIME
        episode.reason = f"killed at the canary's time budget of {task.budget.seconds:g} s{note}"
    elif result.exit_code == ESCALATE_EXIT:
        episode.end = "escalated"
        episode.reason = _last_line(stop.stdout) or "the agent escalated without a reason"
    elif meter is not None and not asked:
        episode.end = "infra_error"
        episode.reason = (
            f"the agent could not run: it stopped before its first model call ({stop.brief()}){note}"
        )
    elif not result.ok and meter is None:
        episode.end, episode.reason = (
            "infra_error",
            f"the agent could not run: it crashed ({stop.brief()}){note}",
        )
    elif not result.ok:
        if meter is not None and meter.upstream_errors:
            episode.end = "infra_error"
        episode.reason = f"the agent stopped ({stop.brief()}){note}"
    else:
        episode.reason = stop.last_words() + note
    return episode


def _metered(task: AgentTask, meter: Meter) -> Episode:
    """The proxy's counts: every counter the built-in loop has, tokens unless a reply lacked usage and
    tool calls unless the agent declared no tools (then it acts some other way, unmeasured)."""
    calls = ("tool_calls", "malformed_tool_calls", "redundant_tool_calls", "text_tool_calls")
    unknown: tuple[str, ...] = () if meter.saw_tools else calls
    return Episode(
        end="finished",
        transcript=meter.transcript(task.canary.spec.spec),
        unknown=unknown,
        **meter.counts(),
    )


def _reported(task: AgentTask, lines: list[TranscriptLine] | None) -> Episode:
    """What the agent's own transcript says; null where it says nothing."""
    counters = _counters(lines)
    return Episode(
        end="finished",
        transcript=Transcript(
            spec=task.canary.spec.spec, turns=[_turn(i, line) for i, line in enumerate(lines or [])]
        ),
        unknown=UNSEEN + tuple(name for name in REPORTED if counters.get(name) is None),
        tool_calls=counters.get("tool_calls") or 0,
        prompt_tokens=counters.get("prompt_tokens") or 0,
        completion_tokens=counters.get("completion_tokens") or 0,
        model_s=sum(line.latency_s for line in lines or []),
    )


def read_transcript(path: Path) -> tuple[list[TranscriptLine] | None, str]:
    """The transcript's readable turns (None when there is none) and a note naming unreadable lines.

    One bad line costs that line, not the whole transcript: the note says which lines were skipped.
    """
    if not path.is_file():
        return None, ""
    lines, bad = [], []
    for number, raw in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            lines.append(TranscriptLine.model_validate(json.loads(raw)))
        except (json.JSONDecodeError, ValidationError) as exc:
            bad.append((number, str(exc).splitlines()[0]))
    if not bad:
        return lines, ""
    where = ", ".join(str(number) for number, _ in bad[:5]) + (", ..." if len(bad) > 5 else "")
    return lines, (
        f"transcript {path.name}: {len(bad)} unreadable line(s) skipped (line {where}: {bad[0][1]})"
    )


def _counters(lines: list[TranscriptLine] | None) -> dict[str, int | None]:
    if lines is None:
        return {}
    tokens_known = all(line.usage is not None for line in lines)
    usages = [line.usage for line in lines if line.usage is not None]
    return {
        "turns": len(lines),
        "tool_calls": sum(len(line.tool_calls) for line in lines),
        "prompt_tokens": sum(u.prompt_tokens for u in usages) if tokens_known else None,
        "completion_tokens": sum(u.completion_tokens for u in usages) if tokens_known else None,
    }


def _over_budget(
    task: AgentTask, meter: Meter | None, lines: list[TranscriptLine] | None
) -> tuple[Limit, str] | None:
    """The proxy's refusal, or (without one) a transcript showing more than the budget allowed."""
    if meter is not None:
        if meter.exceeded is None:
            return None
        return meter.exceeded, meter.refusal().removeprefix("agentloop: ").split(";")[0]
    counters = _counters(lines)
    turns = counters.get("turns")
    if turns is not None and turns > task.budget.turns:
        return Limit.TURNS, f"the agent reported {turns} turns, over the budget of {task.budget.turns}"
    prompt, completion = counters.get("prompt_tokens"), counters.get("completion_tokens")
    if prompt is not None and completion is not None and prompt + completion > task.budget.tokens:
        return Limit.TOKENS, (
            f"the agent reported {prompt + completion:,} tokens, over the budget of {task.budget.tokens:,}"
        )
    return None


def _turn(index: int, line: TranscriptLine) -> Turn:
    calls = [
        ToolCall(id=f"external_{index}_{n}", name=call.name, arguments=call.arguments)
        for n, call in enumerate(line.tool_calls)
    ]
    results = [
        ToolResult(call_id=made.id, name=call.name, ok=call.ok, output=call.output)
        for made, call in zip(calls, line.tool_calls, strict=True)
        if call.ok is not None
    ]
    return Turn(
        index=index,
        request_messages=0,
        request_chars=0,
        content=line.content,
        calls=calls,
        results=results,
        usage=line.usage or Usage(),
        latency_s=line.latency_s,
    )


def _last_line(output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def installed_paths(paths: Sequence[str]) -> tuple[Path, ...]:
    """`visible` entries with the harness's variables expanded; one naming an unset variable or a
    missing folder is skipped (the agent is then looked up on the sandbox's PATH instead)."""
    expanded = (Path(os.path.expandvars(os.path.expanduser(raw))) for raw in paths)
    return tuple(path.resolve() for path in expanded if "$" not in str(path) and path.exists())


def make_external_agent(
    settings: ExternalAgentSettings, backend_for: Callable[[ModelSpec], Backend], root: Path
) -> ExternalAgent:
    """The agent for one `[agents.NAME]` table; its model (if any) is served by the usual backend,
    whose URL the proxy forwards to and whose fingerprint the attempt records."""
    env = {name: os.environ[name] for name in settings.pass_env if name in os.environ}
    env.update(settings.env, AGENTLOOP_ROOT=str(root))
    visible = (root, *installed_paths(settings.visible))
    if settings.model is None:
        return ExternalAgent(settings.command, env=env, visible=visible)
    spec = ModelSpec.parse(settings.model)
    backend = backend_for(spec)
    url = getattr(backend, "base_url", None)
    if url is None:
        raise BackendError(
            f"model {spec.raw} of an external agent has no HTTP endpoint to hand over; "
            "use an OpenAI-compatible backend (openai:, llamacpp:, embedded:, ...)"
        )
    return ExternalAgent(
        settings.command,
        env=env,
        model_url=str(url),
        model=spec.model,
        api_key=getattr(backend, "api_key", None),
        model_info=backend.fingerprint(),
        visible=visible,
    )
