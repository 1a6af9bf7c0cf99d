"""The serving stack a model ran on, and what differs between two runs of it.

A pass rate that moved between two runs means nothing until the stack underneath is known to be
the same: another runtime version, other weights behind the same tag, another quantization, a
shorter context, another chat template or tool-call parser each change behaviour on their own.
Each runtime records these under its own keys in `model_info`; this module reads them as one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_agentloop.records import Attempt

FIELDS = (
    "runtime version",
    "weights digest",
    "quantization",
    "context",
    "chat-template hash",
    "tool-call parser",
)
GUARD_CAVEATS = ("unchecked:", "unsized:", "[assumed")


def serving_stack(info: Mapping[str, Any]) -> dict[str, Any]:
    """The six facts from one attempt's `model_info`, None where the runtime did not say."""
    found = info.get("props")
    props: Mapping[str, Any] = found if isinstance(found, dict) else {}
    build = props.get("build_info")
    runtime = info.get("runtime")
    return {
        "runtime version": f"{runtime} {build}" if runtime and build else runtime,
        "weights digest": info.get("digest") or info.get("sha256"),
        "quantization": info.get("quantization"),
        "context": info.get("context") or info.get("num_ctx") or info.get("n_ctx") or props.get("n_ctx"),
        "chat-template hash": info.get("chat_template_sha256") or props.get("chat_template_sha256"),
        "tool-call parser": info.get("tool_call_parser"),
    }


def _values(attempts: Iterable[Attempt], field: str) -> list[Any]:
    """The distinct values of one field, in the order attempts recorded them."""
    return list(dict.fromkeys(serving_stack(a.model_info).get(field) for a in attempts if a.model_info))


def _show(values: Sequence[Any]) -> str:
    return " / ".join("unknown" if v is None else str(v) for v in values) or "unknown"


def stack_differences(a: Sequence[Attempt], b: Sequence[Attempt]) -> list[str]:
    """One line naming every serving-stack field that differs between A and B (or saying none does)."""
    changed = [
        f"{field} {_show(left)} -> {_show(right)}"
        for field in FIELDS
        if (left := _values(a, field)) != (right := _values(b, field))
    ]
    if changed:
        return [f"serving stack differs: {'; '.join(changed)}"]
    stack = {field: _values(a, field) for field in FIELDS}
    known = [f"{field} {_show(v)}" for field, v in stack.items() if any(x is not None for x in v)]
    return [f"serving stack: the same ({', '.join(known) or 'nothing recorded'})"]


def stack_rows(attempts: Sequence[Attempt]) -> list[str]:
    """A card's lines: each field, and where the run itself changed one (a resumed run, a reload)."""
    rows = []
    for field in FIELDS:
        values = _values(attempts, field)
        differs = " (differs within this run)" if len(values) > 1 else ""
        rows.append(f"- {field}: {_show(values)}{differs}")
    return rows


def guard_notes(attempts: Iterable[Attempt]) -> list[str]:
    """Once per model: what the memory guard could not check, or assumed to size the model."""
    notes: dict[str, str] = {}
    for attempt in attempts:
        guard = attempt.model_info.get("guard")
        if isinstance(guard, str) and any(caveat in guard for caveat in GUARD_CAVEATS):
            notes.setdefault(attempt.model, f"guard: {attempt.model}: {guard}")
    return list(notes.values())
