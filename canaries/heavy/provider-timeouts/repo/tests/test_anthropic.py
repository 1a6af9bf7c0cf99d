from llmclients.providers.anthropic import URL, AnthropicProvider


def test_complete_returns_text(transport_replying):
    transport = transport_replying({"content": [{"type": "text", "text": "hello"}]})
    assert AnthropicProvider("key", transport).complete("hi") == "hello"
    assert transport.calls[0]["url"] == URL
