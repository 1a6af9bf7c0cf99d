"""Client for the Mistral chat API."""

from llmclients.transport import Transport

URL = "https://api.mistral.ai/v1/chat/completions"


class MistralProvider:
    def __init__(self, api_key: str, transport: Transport, model: str = "mistral-small"):
        self.api_key = api_key
        self.transport = transport
        self.model = model

    def complete(self, prompt: str) -> str:
        reply = self.transport.post(
            URL,
            json={
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "safe_prompt": False,
            },
            headers={"authorization": f"Bearer {self.api_key}"},
        )
        return reply["choices"][0]["message"]["content"]
