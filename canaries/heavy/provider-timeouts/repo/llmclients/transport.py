"""The one place that talks HTTP, so providers stay testable with a recording transport."""

import json as jsonlib
import urllib.request
from typing import Any, Protocol


class Transport(Protocol):
    def post(
        self, url: str, *, json: dict[str, Any], headers: dict[str, str], timeout: float | None = None
    ) -> dict[str, Any]: ...


class HttpTransport:
    def post(
        self, url: str, *, json: dict[str, Any], headers: dict[str, str], timeout: float | None = None
    ) -> dict[str, Any]:
        body = jsonlib.dumps(json).encode()
        request = urllib.request.Request(
            url, data=body, headers={"content-type": "application/json", **headers}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return jsonlib.loads(response.read())
