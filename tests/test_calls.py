"""Tool-call parsing: every way a model's reply can carry a call, and every way it can get one wrong."""

from __future__ import annotations

import pytest

from pytest_agentloop.agent.calls import parse_reply, parse_text
from pytest_agentloop.agent.tools import TOOL_ARGS
from pytest_agentloop.backends.base import ChatResponse, RawToolCall


def native(*calls: RawToolCall, finish_reason: str = "tool_calls") -> ChatResponse:
    return ChatResponse(tool_calls=list(calls), finish_reason=finish_reason)


@pytest.mark.parametrize(
    "arguments",
    ['{"path": "calc.py"}', {"path": "calc.py"}, ' {"path":"calc.py"} '],
    ids=["json-string", "dict", "padded-string"],
)
def test_native_arguments_as_string_or_dict(arguments: str | dict[str, str]) -> None:
    parsed = parse_reply(native(RawToolCall("c1", "read_file", arguments)), TOOL_ARGS, "t0")
    assert [(c.id, c.name, c.arguments, c.source) for c in parsed.calls] == [
        ("c1", "read_file", {"path": "calc.py"}, "native")
    ]
    assert parsed.malformed == []


def test_missing_ids_are_generated_and_distinct() -> None:
    reply = native(RawToolCall("", "run_tests", ""), RawToolCall("", "push", "{}"))
    ids = [c.id for c in parse_reply(reply, TOOL_ARGS, "t3").calls]
    assert ids == ["t3_0", "t3_1"]


def test_defaults_are_filled_so_equal_calls_compare_equal() -> None:
    parsed = parse_reply(native(RawToolCall("a", "list_files", "")), TOOL_ARGS, "t0")
    assert parsed.calls[0].arguments == {"path": "."}


@pytest.mark.parametrize(
    ("raw", "kind", "words"),
    [
        (RawToolCall("a", "read_file", '{}""'), "bad_json", "not valid JSON"),
        (RawToolCall("a", "read_file", "[1, 2]"), "bad_json", "must be a JSON object"),
        (RawToolCall("a", "delete_repo", "{}"), "unknown_tool", "the tools are: read_file"),
        (RawToolCall("a", "write_file", '{"path": "x.py"}'), "bad_arguments", "'content' is missing"),
        (RawToolCall("a", "read_file", '{"path": 3}'), "bad_arguments", "'path'"),
        (
            RawToolCall("a", "read_file", '{"path": "a", "mode": "r"}'),
            "bad_arguments",
            "'mode' is not a parameter",
        ),
    ],
    ids=["junk", "not-object", "unknown", "missing-field", "wrong-type", "extra-field"],
)
def test_native_malformed(raw: RawToolCall, kind: str, words: str) -> None:
    parsed = parse_reply(native(raw), TOOL_ARGS, "t0")
    assert parsed.calls == []
    [bad] = parsed.malformed
    assert (bad.kind, bad.source) == (kind, "native")
    assert words in bad.error


def test_schema_violation_lists_every_field() -> None:
    parsed = parse_reply(native(RawToolCall("a", "edit_file", '{"path": "a", "extra": 1}')), TOOL_ARGS, "t0")
    error = parsed.malformed[0].error
    assert all(f"'{name}'" in error for name in ("old", "new", "extra"))


def test_native_cut_off_mid_arguments_is_truncated() -> None:
    reply = native(
        RawToolCall("a", "write_file", '{"path": "a.py", "content": "def f'), finish_reason="length"
    )
    assert [m.kind for m in parse_reply(reply, TOOL_ARGS, "t0").malformed] == ["truncated"]


def test_one_bad_call_does_not_hide_the_good_ones() -> None:
    reply = native(RawToolCall("a", "run_tests", "{}"), RawToolCall("b", "nope", "{}"))
    parsed = parse_reply(reply, TOOL_ARGS, "t0")
    assert ([c.name for c in parsed.calls], [m.kind for m in parsed.malformed]) == (
        ["run_tests"],
        ["unknown_tool"],
    )


@pytest.mark.parametrize(
    "content",
    [
        'Reading.\n<tool_call>{"name": "read_file", "arguments": {"path": "calc.py"}}</tool_call>',
        '<tool_call>\n{"name": "read_file", "arguments": "{\\"path\\": \\"calc.py\\"}"}\n</tool_call>',
        'Here:\n```json\n{"name": "read_file", "arguments": {"path": "calc.py"}}\n```\n',
        'I will call {"name": "read_file", "arguments": {"path": "calc.py"}} now.',
        '{"name": "read_file", "parameters": {"path": "calc.py"}}',
        '{"function": {"name": "read_file", "arguments": {"path": "calc.py"}}}',
        '[TOOL_REQUEST]\n{"name": "read_file", "arguments": {"path": "calc.py"}}\n[END_TOOL_REQUEST]',
    ],
    ids=["tag", "tag-string-args", "fence", "bare-in-prose", "parameters-alias", "openai-shape", "lmstudio"],
)
def test_text_recovery(content: str) -> None:
    parsed = parse_reply(ChatResponse(content=content, finish_reason="stop"), TOOL_ARGS, "t1")
    assert [(c.id, c.name, c.arguments, c.source) for c in parsed.calls] == [
        ("t1_0", "read_file", {"path": "calc.py"}, "text")
    ]
    assert parsed.malformed == []


def test_several_tagged_calls_in_order() -> None:
    content = (
        '<tool_call>{"name": "commit", "arguments": {"message": "m"}}</tool_call>\n'
        '<tool_call>{"name": "push", "arguments": {}}</tool_call>'
    )
    assert [c.name for c in parse_text(content, TOOL_ARGS, "t0").calls] == ["commit", "push"]


def test_prose_with_braces_is_not_a_call() -> None:
    content = 'Use a dict like {"a": 1} or a set {1, 2}; python code: ```python\nx = {"k": 2}\n```'
    assert parse_text(content, TOOL_ARGS, "t0") == parse_text("", TOOL_ARGS, "t0")


@pytest.mark.parametrize(
    ("content", "truncated", "kind"),
    [
        ('<tool_call>{"name": "read_file", "arguments": {"path": }</tool_call>', False, "bad_json"),
        ('<tool_call>{"name": "write_file", "arguments": {"path": "a", "cont', True, "truncated"),
        ('{"name": "write_file", "arguments": {"path": "a", "cont', True, "truncated"),
        ('{\n  "name": "commit",\n  "arguments": {\n    "message": "The task is', True, "truncated"),
        ('<tool_call>{"name": "rm", "arguments": {}}</tool_call>', False, "unknown_tool"),
        ('<tool_call>{"name": "commit", "arguments": {}}</tool_call>', False, "bad_arguments"),
        ('<tool_call>["read_file"]</tool_call>', False, "bad_json"),
        ('[TOOL_REQUEST]{"name": "read_file", "arguments": {path: 1}}[END_TOOL_REQUEST]', False, "bad_json"),
    ],
    ids=[
        "tag-bad-json",
        "tag-cut-off",
        "bare-cut-off",
        "pretty-cut-off",
        "unknown",
        "missing-field",
        "not-a-call",
        "lmstudio-bad-json",
    ],
)
def test_text_malformed(content: str, truncated: bool, kind: str) -> None:
    parsed = parse_text(content, TOOL_ARGS, "t0", truncated=truncated)
    assert parsed.calls == []
    assert [(m.kind, m.source) for m in parsed.malformed] == [(kind, "text")]


def test_text_is_ignored_when_native_calls_exist() -> None:
    reply = ChatResponse(
        content='<tool_call>{"name": "push", "arguments": {}}</tool_call>',
        tool_calls=[RawToolCall("a", "run_tests", "{}")],
    )
    assert [c.name for c in parse_reply(reply, TOOL_ARGS, "t0").calls] == ["run_tests"]
