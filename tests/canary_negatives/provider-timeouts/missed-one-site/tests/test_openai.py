from llmclients.providers.openai import URL, OpenAIProvider


def test_complete_returns_text(transport_replying):
    transport = transport_replying({"choices": [{"message": {"content": "hello"}}]})
    assert OpenAIProvider("key", transport).complete("hi") == "hello"
    assert transport.calls[0]["url"] == URL


def test_timeout_is_passed(transport_replying):
    transport = transport_replying({"choices": [{"message": {"content": "hello"}}]})
    OpenAIProvider("key", transport, timeout=7.5).complete("hi")
    assert transport.calls[0]["timeout"] == 7.5
