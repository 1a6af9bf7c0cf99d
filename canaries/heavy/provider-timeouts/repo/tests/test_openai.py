from llmclients.providers.openai import URL, OpenAIProvider


def test_complete_returns_text(transport_replying):
    transport = transport_replying({"choices": [{"message": {"content": "hello"}}]})
    assert OpenAIProvider("key", transport).complete("hi") == "hello"
    assert transport.calls[0]["url"] == URL
