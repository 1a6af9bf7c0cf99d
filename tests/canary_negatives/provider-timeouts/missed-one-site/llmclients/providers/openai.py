"""Client for the OpenAI chat API."""

from llmclients.transport import Transport

URL = "https://api.openai.com/v1/chat/completions"


class OpenAIProvider:
    def __init__(
        self, api_key: str, transport: Transport, model: str = "gpt-4.1-mini", timeout: float = 30.0
    ):
        self.api_key = api_key
        self.transport = transport
        self.model = model
        self.timeout = timeout

    def complete(self, prompt: str) -> str:
        reply = self.transport.post(
            URL,
            json={"model": self.model, "messages": [{"role": "user", "content": prompt}]},
            headers={"authorization": f"Bearer {self.api_key}"},
            timeout=self.timeout,
        )
        return reply["choices"][0]["message"]["content"]
