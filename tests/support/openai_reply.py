"""A scripted behaviour's reply as an OpenAI chat.completion body: what LM Studio and vLLM send back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from tests.support.runtime_server import prompt_tokens
from tests.support.scripted_server import Behaviour


@dataclass
class Script:
    """What the scripted behaviours read from their `server` argument."""

    edits: list[tuple[str, str]] = field(default_factory=list)
    request_count: int = 0


def completion(behaviour: Behaviour, script: Script, body: dict[str, Any]) -> dict[str, Any]:
    scripted = behaviour(script, body)  # type: ignore[arg-type]
    script.request_count += 1
    message: dict[str, Any] = {"role": "assistant", "content": scripted.get("content", "")}
    if scripted.get("tool_calls"):
        message["tool_calls"] = scripted["tool_calls"]
    prompt = prompt_tokens(body.get("messages") or [], body.get("tools"))
    return {
        "id": f"chatcmpl-{script.request_count}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": scripted.get("finish_reason", "stop")}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": 20, "total_tokens": prompt + 20},
    }
