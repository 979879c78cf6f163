"""Every provider behind both client APIs, through real Envoy, with the official SDKs.

The fakes share one arithmetic (see integration/fake_provider.py and fake_dialects/): the
reply is "echo: " + the last user text, input tokens = words + 2 per message, output tokens
= words of the reply. So the usage a client sees can be checked exactly, whichever provider
served it and whichever dialect translated it.
"""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

import harness

PROVIDERS = harness.fake_providers("oa", "az", "an", "ge", "br", "mi")
MODELS = {
    "t-openai": ("oa", "gpt-4o-mini"),
    "t-azure": ("az", "my-deployment"),
    "t-claude": ("an", "claude-sonnet-4-5"),
    "t-gemini": ("ge", "gemini-2.5-flash"),
    "t-bedrock": ("br", "anthropic.claude-3-5-sonnet-20240620-v1:0"),
    "t-mistral": ("mi", "mistral-small-latest"),
}
CONFIG = {
    "providers": PROVIDERS,
    "models": {name: {"provider": p, "model": m} for name, (p, m) in MODELS.items()},
}
# What each provider's request looks like on the wire (path fragment the fake saw).
UPSTREAM_PATHS = {
    "t-openai": "/v1/chat/completions",
    "t-azure": "/openai/deployments/my-deployment/chat/completions",
    "t-claude": "/v1/messages",
    "t-gemini": "/v1beta/models/gemini-2.5-flash:",
    "t-bedrock": "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse",
    "t-mistral": "/v1/chat/completions",
}
CLIENT_KEY = "sk-client-secret"


@pytest.fixture
def gw(shared_gateway):
    return shared_gateway(CONFIG)


def openai_client(gw, **headers):
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=CLIENT_KEY, max_retries=0,
                         default_headers=headers or None)


def anthropic_client(gw, **headers):
    return anthropic.Anthropic(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0,
                               default_headers=headers or None)


def assert_upstream(fake_requests, model):
    seen = fake_requests.last()
    assert UPSTREAM_PATHS[model] in seen["path"], seen["path"]
    assert CLIENT_KEY not in json.dumps(seen["headers"])
    return seen


@pytest.mark.parametrize("model", list(MODELS))
def test_openai_client_text(gw, fake_requests, model):
    reply = openai_client(gw).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "one two three"}])
    assert reply.choices[0].message.content == "echo: one two three"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model, "every response names a model (the routed one when the provider does not)"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (5, 4)
    assert_upstream(fake_requests, model)


@pytest.mark.parametrize("model", list(MODELS))
def test_openai_client_stream(gw, fake_requests, model):
    chunks = list(openai_client(gw).chat.completions.create(
        model=model, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "one two three"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: one two three"
    assert all(c.model for c in chunks)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (5, 4)
    assert_upstream(fake_requests, model)


@pytest.mark.parametrize("model", list(MODELS))
def test_anthropic_client_text(gw, fake_requests, model):
    message = anthropic_client(gw).messages.create(
        model=model, max_tokens=100, messages=[{"role": "user", "content": "one two three"}])
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "echo: one two three"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 4)
    assert_upstream(fake_requests, model)


@pytest.mark.parametrize("model", list(MODELS))
def test_anthropic_client_stream(gw, fake_requests, model):
    with anthropic_client(gw).messages.stream(
            model=model, max_tokens=100, messages=[{"role": "user", "content": "one two three"}]) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert text == "echo: one two three"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (5, 4)
    assert_upstream(fake_requests, model)


OPENAI_TOOLS = [{"type": "function", "function": {
    "name": "lookup", "description": "Look something up",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}}]
ANTHROPIC_TOOLS = [{"name": "lookup", "description": "Look something up",
                    "input_schema": {"type": "object", "properties": {"query": {"type": "string"}},
                                     "required": ["query"]}}]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model", list(MODELS))
def test_openai_client_tool_call(gw, fake_requests, model, stream):
    c = openai_client(gw, **{"x-fake-tool-call": "lookup"})
    messages = [{"role": "user", "content": "find cats"}]
    if stream:
        chunks = list(c.chat.completions.create(model=model, messages=messages, tools=OPENAI_TOOLS, stream=True))
        calls = {}
        for chunk in chunks:
            for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                entry = calls.setdefault(tc.index, {"name": "", "args": ""})
                entry["name"] += tc.function.name or "" if tc.function else ""
                entry["args"] += (tc.function.arguments or "") if tc.function else ""
        assert [c["name"] for c in calls.values()] == ["lookup"]
        assert json.loads(calls[0]["args"]) == {"query": "find cats"}
        finish = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
        assert finish == ["tool_calls"]
    else:
        reply = c.chat.completions.create(model=model, messages=messages, tools=OPENAI_TOOLS)
        call = reply.choices[0].message.tool_calls[0]
        assert call.function.name == "lookup"
        assert json.loads(call.function.arguments) == {"query": "find cats"}
        assert reply.choices[0].finish_reason == "tool_calls"
        # The tool result goes back in the next turn, translated again.
        follow = openai_client(gw).chat.completions.create(model=model, tools=OPENAI_TOOLS, messages=[
            *messages,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": "cats are mammals"},
        ])
        assert follow.choices[0].message.content.startswith("echo:")
    assert_upstream(fake_requests, model)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("model", list(MODELS))
def test_anthropic_client_tool_call(gw, fake_requests, model, stream):
    c = anthropic_client(gw, **{"x-fake-tool-call": "lookup"})
    messages = [{"role": "user", "content": "find cats"}]
    if stream:
        with c.messages.stream(model=model, max_tokens=100, messages=messages, tools=ANTHROPIC_TOOLS) as s:
            message = s.get_final_message()
    else:
        message = c.messages.create(model=model, max_tokens=100, messages=messages, tools=ANTHROPIC_TOOLS)
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [u.name for u in uses] == ["lookup"]
    assert uses[0].input == {"query": "find cats"}
    assert message.stop_reason == "tool_use"
    assert_upstream(fake_requests, model)


@pytest.mark.parametrize("model", list(MODELS))
def test_provider_errors_reach_each_client_in_its_shape(gw, model):
    with pytest.raises(openai.RateLimitError):
        openai_client(gw, **{"x-fake-status": "429"}).chat.completions.create(
            model=model, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.RateLimitError) as err:
        anthropic_client(gw, **{"x-fake-status": "429"}).messages.create(
            model=model, max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert err.value.body["type"] == "error"


def test_unsupported_feature_is_a_400_naming_field_and_provider(gw, fake_requests):
    with pytest.raises(openai.BadRequestError) as err:
        openai_client(gw).chat.completions.create(
            model="t-claude", n=2, messages=[{"role": "user", "content": "x"}])
    assert "n" in err.value.message and "anthropic" in err.value.message
    assert fake_requests() == []
