"""`limits.max_sse_event_bytes` bounds every provider stream through real Envoy (issue 14):
the Anthropic stream an Anthropic client gets passed through, and the same stream translated
for an OpenAI client. With a 100-byte bound the provider's first event (`message_start`) is
over it: the client's SDK reads the gateway's error event, naming the bound, and nothing
after it."""

from __future__ import annotations

import anthropic
import openai
import pytest

LIMIT = 100
CONFIG = {
    "providers": {"claude": {"kind": "anthropic", "cluster": "fake_openai",
                             "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}}},
    "models": {"a-claude": {"provider": "claude", "model": "claude-sonnet-4-5"}},
    "limits": {"max_sse_event_bytes": LIMIT},
}
MESSAGES = [{"role": "user", "content": "one two three"}]


def test_a_passed_through_stream_ends_on_the_bound(gateway):
    gw = gateway(CONFIG)
    client = anthropic.Anthropic(base_url=gw.base_url, api_key="sk-any", max_retries=0)
    events = []
    with pytest.raises(anthropic.APIError) as raised:
        with client.messages.stream(model="a-claude", max_tokens=20, messages=MESSAGES,
                                    extra_headers={"x-fake-words": "3"}) as stream:
            events.extend(stream)
    assert f"exceeds {LIMIT} bytes" in str(raised.value)
    assert events == [], "the event over the bound reached the client"


def test_a_translated_stream_ends_on_the_bound(gateway):
    gw = gateway(CONFIG)
    client = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="sk-any", max_retries=0)
    text = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(model="a-claude", messages=MESSAGES, stream=True,
                                                    extra_headers={"x-fake-words": "3"}):
            text.extend(c.delta.content or "" for c in chunk.choices)
    assert f"exceeds {LIMIT} bytes" in str(raised.value)
    assert "".join(text) == ""
