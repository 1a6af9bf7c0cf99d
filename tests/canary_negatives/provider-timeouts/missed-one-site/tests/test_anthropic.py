from llmclients.providers.anthropic import URL, AnthropicProvider


def test_complete_returns_text(transport_replying):
    transport = transport_replying({"content": [{"type": "text", "text": "hello"}]})
    assert AnthropicProvider("key", transport).complete("hi") == "hello"
    assert transport.calls[0]["url"] == URL


def test_timeout_is_passed(transport_replying):
    transport = transport_replying({"content": [{"type": "text", "text": "hello"}]})
    AnthropicProvider("key", transport, timeout=7.5).complete("hi")
    assert transport.calls[0]["timeout"] == 7.5
