"""Turning a model's reply into tool calls the harness can run, and naming what went wrong otherwise.

Native calls (the runtime parsed them into `tool_calls`) come first. When there are none, calls are
recovered from the text: `<tool_call>{...}</tool_call>` tags (or LM Studio's `[TOOL_REQUEST]` ones),
```json fences, then bare JSON objects shaped like a call. Every failure is sub-typed (bad_json,
unknown_tool, bad_arguments, truncated), so "cannot format" can be told apart from "cannot code".
No reply text makes parsing raise: JSON nested past MAX_JSON_DEPTH is a bad_json call, and lone
surrogates in decoded strings become U+FFFD (a file written with them could not be encoded).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from pytest_agentloop.backends.base import ChatResponse, JsonTooDeep, RawToolCall, clean_json
from pytest_agentloop.records import CallSource, MalformedCall, MalformedKind, ToolCall

# Hermes/Qwen `<tool_call>` tags, and LM Studio's fallback for templates without native tool support.
_TAG = re.compile(r"(?:<tool_call>|\[TOOL_REQUEST\])(.*?)(</tool_call>|\[END_TOOL_REQUEST\]|$)", re.DOTALL)
_FENCE = re.compile(r"```(?:json)?[ \t]*\n(.*?)(```|$)", re.DOTALL)
_RAW_CAP = 2_000  # how much of a malformed call is kept for the transcript
_DECODER = json.JSONDecoder()
_CALL_START = re.compile(r'\{\s*"name"\s*:')
_CUT = "the reply was cut off (max tokens) in the middle of a tool call; make the call shorter"


@dataclass
class ParsedCalls:
    calls: list[ToolCall] = field(default_factory=list)
    malformed: list[MalformedCall] = field(default_factory=list)


class _Malformed(Exception):
    def __init__(self, kind: MalformedKind, error: str) -> None:
        super().__init__(error)
        self.kind = kind


def parse_reply(response: ChatResponse, tools: Mapping[str, type[BaseModel]], id_prefix: str) -> ParsedCalls:
    """The calls of one reply: native ones if the runtime returned any, else those found in the text."""
    truncated = response.finish_reason == "length"
    if response.tool_calls:
        return _parse_native(response.tool_calls, tools, id_prefix, truncated)
    return parse_text(response.content, tools, id_prefix, truncated=truncated)


def _parse_native(
    raw_calls: list[RawToolCall], tools: Mapping[str, type[BaseModel]], id_prefix: str, truncated: bool
) -> ParsedCalls:
    parsed = ParsedCalls()
    for index, raw in enumerate(raw_calls):
        text = raw.arguments if isinstance(raw.arguments, str) else json.dumps(raw.arguments)
        try:
            arguments = _arguments(raw.arguments, truncated)
            call_id = raw.id or f"{id_prefix}_{index}"
            parsed.calls.append(_validated(call_id, raw.name, arguments, tools, "native"))
        except _Malformed as exc:
            parsed.malformed.append(_malformed(exc, f"{raw.name}({text})", "native"))
    return parsed


def parse_text(
    content: str, tools: Mapping[str, type[BaseModel]], id_prefix: str, *, truncated: bool = False
) -> ParsedCalls:
    """Calls written into the message text, in the first format that appears in it."""
    parsed = ParsedCalls()
    for index, (raw, fragment) in enumerate(_text_candidates(content, truncated)):
        try:
            if isinstance(fragment, _Malformed):
                raise fragment
            name, arguments = _unwrap(fragment, truncated)
            parsed.calls.append(_validated(f"{id_prefix}_{index}", name, arguments, tools, "text"))
        except _Malformed as exc:
            parsed.malformed.append(_malformed(exc, raw, "text"))
    return parsed


def _text_candidates(content: str, truncated: bool) -> Iterator[tuple[str, Any]]:
    """(raw text, decoded JSON or the reason it could not be decoded) for each call-shaped fragment."""
    tagged = list(_TAG.finditer(content))
    if tagged:
        for match in tagged:
            yield from _decode_block(match.group(1), closed=bool(match.group(2)), truncated=truncated)
        return
    fenced = [m for m in _FENCE.finditer(content) if '"name"' in m.group(1)]
    if fenced:
        for match in fenced:
            yield from _decode_block(match.group(1), closed=bool(match.group(2)), truncated=truncated)
        return
    yield from _bare_objects(content, truncated)


def _decode_block(block: str, *, closed: bool, truncated: bool) -> Iterator[tuple[str, Any]]:
    raw = block.strip()
    try:
        value = _loads(raw)
    except _Malformed as exc:
        yield raw, _Malformed("truncated", _CUT) if truncated and not closed else exc
        return
    for item in value if isinstance(value, list) else [value]:
        yield raw, item


def _bare_objects(content: str, truncated: bool) -> Iterator[tuple[str, Any]]:
    """JSON objects anywhere in prose that look like a call: a "name" plus arguments or parameters."""
    position = content.find("{")
    while position != -1:
        try:
            value, end = _DECODER.raw_decode(content, position)
            value = clean_json(value)
        except (ValueError, RecursionError):  # not JSON here, or nested past any call's need
            if truncated and _CALL_START.match(content, position):
                yield content[position:], _Malformed("truncated", _CUT)
                return
            position = content.find("{", position + 1)
            continue
        if isinstance(value, dict) and _looks_like_call(value):
            yield content[position:end], value
            position = content.find("{", end)
        else:
            position = content.find("{", position + 1)


def _looks_like_call(value: dict[str, Any]) -> bool:
    if isinstance(value.get("function"), dict):
        return _looks_like_call(value["function"])
    return isinstance(value.get("name"), str) and ("arguments" in value or "parameters" in value)


def _unwrap(value: Any, truncated: bool) -> tuple[str, dict[str, Any]]:
    """{"name", "arguments"|"parameters"} (or OpenAI's {"function": {...}}) -> name and arguments."""
    if isinstance(value, dict) and isinstance(value.get("function"), dict):
        value = value["function"]
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise _Malformed("bad_json", 'a tool call must be a JSON object {"name": ..., "arguments": {...}}')
    arguments = value.get("arguments", value.get("parameters", {}))
    return value["name"], _arguments(arguments, truncated)


def _arguments(arguments: str | dict[str, Any] | Any, truncated: bool) -> dict[str, Any]:
    """Arguments as a dict, whether the runtime sent an object or a JSON string (empty means none)."""
    if isinstance(arguments, str):
        if not arguments.strip():
            return {}
        try:
            arguments = _loads(arguments, "arguments are ")
        except _Malformed:
            if truncated:
                raise _Malformed("truncated", _CUT) from None
            raise
    if not isinstance(arguments, dict):
        raise _Malformed("bad_json", f"arguments must be a JSON object, got {type(arguments).__name__}")
    return arguments


def _loads(text: str, prefix: str = "") -> Any:
    """JSON text decoded and cleaned (see `clean_json`), or the _Malformed that says why not."""
    try:
        return clean_json(json.loads(text))
    except json.JSONDecodeError as exc:
        raise _Malformed("bad_json", f"{prefix}not valid JSON ({exc.msg} at character {exc.pos})") from None
    except (JsonTooDeep, RecursionError):
        raise _Malformed("bad_json", "JSON nested too deep for a tool call") from None


def _validated(
    call_id: str,
    name: str,
    arguments: dict[str, Any],
    tools: Mapping[str, type[BaseModel]],
    source: CallSource,
) -> ToolCall:
    model = tools.get(name)
    if model is None:
        raise _Malformed("unknown_tool", f"unknown tool '{name}'; the tools are: {', '.join(tools)}")
    try:
        valid = model.model_validate(arguments)
    except ValidationError as exc:
        raise _Malformed("bad_arguments", f"bad arguments for {name}: {describe_errors(exc)}") from None
    return ToolCall(id=call_id, name=name, arguments=valid.model_dump(), source=source)


def _malformed(exc: _Malformed, raw: str, source: CallSource) -> MalformedCall:
    return MalformedCall(kind=exc.kind, raw=raw[:_RAW_CAP], error=str(exc), source=source)


def describe_errors(exc: ValidationError) -> str:
    """One clause per field: `content: field required; extra: not a parameter of this tool`."""
    parts = []
    for error in exc.errors():
        field = ".".join(str(p) for p in error["loc"]) or "(arguments)"
        if error["type"] == "missing":
            parts.append(f"'{field}' is missing")
        elif error["type"] == "extra_forbidden":
            parts.append(f"'{field}' is not a parameter of this tool")
        else:
            parts.append(f"'{field}': {error['msg'].lower()}")
    return "; ".join(parts) + "."
