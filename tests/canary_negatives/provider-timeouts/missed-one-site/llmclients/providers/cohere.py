"""Client for the Cohere chat API."""

from llmclients.transport import Transport

URL = "https://api.cohere.com/v2/chat"


class CohereProvider:
    def __init__(self, api_key: str, transport: Transport, model: str = "command-r", timeout: float = 30.0):
        self.api_key = api_key
        self.transport = transport
        self.model = model
        self.timeout = timeout

    def complete(self, prompt: str) -> str:
        reply = self.transport.post(
            URL,
            json={"model": self.model, "messages": [{"role": "user", "content": prompt}]},
            headers={"authorization": f"bearer {self.api_key}", "x-client-name": "llmclients"},
            timeout=self.timeout,
        )
        return reply["message"]["content"][0]["text"]
