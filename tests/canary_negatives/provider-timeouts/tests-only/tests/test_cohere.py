from llmclients.providers.cohere import URL, CohereProvider


def test_complete_returns_text(transport_replying):
    transport = transport_replying({"message": {"content": [{"type": "text", "text": "hello"}]}})
    assert CohereProvider("key", transport).complete("hi") == "hello"
    assert transport.calls[0]["url"] == URL


def test_timeout_is_passed(transport_replying):
    transport = transport_replying({"message": {"content": [{"type": "text", "text": "hello"}]}})
    CohereProvider("key", transport, timeout=7.5).complete("hi")
    assert transport.calls[0]["timeout"] == 7.5
