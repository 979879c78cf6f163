"""`n` > 1 through real Envoy with the official openai SDK (issue 13): several choices from
Gemini (`candidateCount`), JSON and streamed, each with its own index, text and finish; a
provider with one choice per answer (Anthropic, Bedrock) is still a 400 naming `n`."""

from __future__ import annotations

import openai
import pytest

import harness

CLIENT_KEY = "sk-choices-client"
PROVIDERS = harness.fake_providers("ge", "br")
CONFIG = {"providers": PROVIDERS, "models": {
    "n-gemini": {"provider": "ge", "model": "gemini-2.5-flash"},
    "n-bedrock": {"provider": "br", "model": "anthropic.claude-sonnet-4-5-20250929-v1:0"}}}
ASK = [{"role": "user", "content": "name three colors"}]
EXPECTED = ["echo: name three colors", "echo: name three colors alt1", "echo: name three colors alt2"]


@pytest.fixture
def client(shared_gateway):
    gw = shared_gateway(CONFIG)
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=CLIENT_KEY, max_retries=0)


def test_gemini_candidates_are_the_choices(client, fake_requests):
    reply = client.chat.completions.create(model="n-gemini", n=3, messages=ASK)
    assert fake_requests.last()["body"]["generationConfig"]["candidateCount"] == 3
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert [c.message.content for c in reply.choices] == EXPECTED
    assert [c.finish_reason for c in reply.choices] == ["stop"] * 3
    # The fake counts every candidate's words, as Gemini's candidatesTokenCount does.
    assert reply.usage.completion_tokens == sum(len(t.split()) for t in EXPECTED)


def test_gemini_candidates_stream_as_choices(client):
    chunks = list(client.chat.completions.create(model="n-gemini", n=3, messages=ASK, stream=True,
                                                 stream_options={"include_usage": True}))
    texts, finishes, roles = {}, {}, {}
    for chunk in chunks:
        for c in chunk.choices:
            texts[c.index] = texts.get(c.index, "") + (c.delta.content or "")
            if c.delta.role:
                roles[c.index] = c.delta.role
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    assert [texts[i] for i in range(3)] == EXPECTED
    assert finishes == {0: "stop", 1: "stop", 2: "stop"} and roles == {0: "assistant", 1: "assistant", 2: "assistant"}
    assert chunks[-1].usage.completion_tokens == sum(len(t.split()) for t in EXPECTED)
    # The SDK's own accumulator rebuilds every choice.
    with client.chat.completions.stream(model="n-gemini", n=3, messages=ASK) as stream:
        final = stream.get_final_completion()
    assert [c.message.content for c in final.choices] == EXPECTED


def test_one_choice_providers_refuse_n(client, fake_requests):
    fake_requests.clear()
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="n-bedrock", n=2, messages=ASK)
    assert refused.value.body["param"] == "n" and "bedrock" in refused.value.body["message"]
    assert fake_requests() == []
