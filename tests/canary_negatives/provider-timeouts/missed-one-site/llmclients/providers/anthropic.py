"""Client for the Anthropic chat API."""

from llmclients.transport import Transport

URL = "https://api.anthropic.com/v1/messages"


class AnthropicProvider:
    def __init__(
        self, api_key: str, transport: Transport, model: str = "claude-haiku", timeout: float = 30.0
    ):
        self.api_key = api_key
        self.transport = transport
        self.model = model
        self.timeout = timeout

    def complete(self, prompt: str) -> str:
        reply = self.transport.post(
            URL,
            json={"model": self.model, "max_tokens": 1024, "messages": [{"role": "user", "content": prompt}]},
            headers={"x-api-key": self.api_key, "anthropic-version": "2023-06-01"},
            timeout=self.timeout,
        )
        return reply["content"][0]["text"]
