"""The prompt layer in real Envoy: a templated request, a decorator, a guard rejection and
masking, for both client dialects, with the fake provider asserting what it received."""

from __future__ import annotations

import anthropic
import openai
import pytest

CONFIG = {
    "providers": {
        "fake": {"kind": "openai", "cluster": "fake_openai", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
        "claude": {"kind": "anthropic", "cluster": "fake_openai", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
    },
    "models": {"p-gpt": {"provider": "fake", "model": "gpt-4o-mini"},
               "p-claude": {"provider": "claude", "model": "claude-sonnet-4-5"}},
    "prompts": {
        "templates": {
            "summarize": {
                "variables": {"text": {"type": "string"},
                              "style": {"type": "enum", "values": ["short", "long"], "default": "short"}},
                "versions": {"1": {"messages": [
                    {"role": "system", "content": "You summarize ({{style}})."},
                    {"role": "user", "content": "Summarize: {{text}}"}]}},
            }
        },
        "decorators": [{"name": "house", "match": {"model": "p-claude"},
                        "prepend": [{"role": "system", "content": "Be kind."}]}],
        "guards": {"deny": [{"name": "no-secrets", "regex": "(?i)password\\s*:"}],
                   "mask": [{"name": "email", "builtin": "email"}]},
    },
}


@pytest.fixture
def gw(shared_gateway):
    return shared_gateway(CONFIG)


def oa(gw):
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="sk-x", max_retries=0)


def test_templated_request_is_rendered_and_the_field_removed(gw, fake_requests):
    # A valid OpenAI request otherwise: the template's messages go before the request's own.
    reply = oa(gw).chat.completions.create(
        model="p-gpt", messages=[{"role": "user", "content": "thanks"}],
        extra_body={"llm_gateway_template": {"name": "summarize", "variables": {"text": "the cat sat"}}})
    assert reply.choices[0].message.content.startswith("echo: Summarize: the cat sat")
    body = fake_requests.last()["body"]
    assert "llm_gateway_template" not in body
    assert body["messages"][0] == {"role": "system", "content": "You summarize (short)."}
    assert body["messages"][1]["role"] == "user"
    assert "Summarize: the cat sat" in str(body["messages"][1]["content"])
    lines = gw.access_log_lines(min_lines=1)
    assert lines


def test_template_errors_are_400_naming_the_variable(gw, fake_requests):
    with pytest.raises(openai.BadRequestError) as err:
        oa(gw).chat.completions.create(
            model="p-gpt", messages=[{"role": "user", "content": "x"}],
            extra_body={"llm_gateway_template": {"name": "summarize", "variables": {"style": "medium"}}})
    assert "text" in err.value.message or "style" in err.value.message
    assert fake_requests() == []


def test_decorator_and_masking_in_the_anthropic_dialect(gw, fake_requests):
    client = anthropic.Anthropic(base_url=gw.base_url, api_key="sk-x", max_retries=0)
    msg = client.messages.create(model="p-claude", max_tokens=50,
                                 messages=[{"role": "user", "content": "mail ada@example.com now"}])
    assert msg.content[0].text == "echo: mail [EMAIL] now"
    body = fake_requests.last()["body"]
    system = body["system"] if isinstance(body["system"], str) else " ".join(b["text"] for b in body["system"])
    assert "Be kind." in system
    assert "ada@example.com" not in str(body)


def test_guard_rejects_without_echoing_the_match(gw, fake_requests):
    with pytest.raises(openai.BadRequestError) as err:
        oa(gw).chat.completions.create(model="p-gpt", messages=[{"role": "user", "content": "my Password: hunter2"}])
    assert "no-secrets" in err.value.message
    assert "hunter2" not in err.value.message
    with pytest.raises(anthropic.BadRequestError):
        anthropic.Anthropic(base_url=gw.base_url, api_key="sk-x", max_retries=0).messages.create(
            model="p-claude", max_tokens=10, system="password: x", messages=[{"role": "user", "content": "hi"}])
    assert fake_requests() == []
