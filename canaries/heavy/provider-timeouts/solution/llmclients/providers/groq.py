"""Client for the Groq chat API."""

from llmclients.transport import Transport

URL = "https://api.groq.com/openai/v1/chat/completions"


class GroqProvider:
    def __init__(
        self, api_key: str, transport: Transport, model: str = "llama-3.1-8b", timeout: float = 30.0
    ):
        self.api_key = api_key
        self.transport = transport
        self.model = model
        self.timeout = timeout

    def complete(self, prompt: str) -> str:
        reply = self.transport.post(
            URL,
            json={"model": self.model, "messages": [{"role": "user", "content": prompt}], "stream": False},
            headers={"authorization": f"Bearer {self.api_key}"},
            timeout=self.timeout,
        )
        return reply["choices"][0]["message"]["content"]
