"""The prompt layer in real Envoy: a templated request, a decorator, a guard rejection and
masking, for both client dialects, with the fake provider asserting what it received."""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest
from harness import metric_value

CONFIG = {
    "providers": {
        "fake": {"kind": "openai", "cluster": "fake_openai", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
        "claude": {"kind": "anthropic", "cluster": "fake_openai", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
    },
    "models": {"p-gpt": {"provider": "fake", "model": "gpt-4o-mini"},
               "p-claude": {"provider": "claude", "model": "claude-sonnet-4-5"},
               "p-forced": {"provider": "fake", "model": "gpt-4o-mini"}},
    "prompts": {
        "templates": {
            "summarize": {
                "model": "p-gpt",
                "variables": {"text": {"type": "string"},
                              "style": {"type": "enum", "values": ["short", "long"], "default": "short"}},
                "versions": {"1": {"messages": [
                    {"role": "system", "content": "You summarize ({{style}})."},
                    {"role": "user", "content": "Summarize: {{text}}"}]}},
            },
            # Two weighted versions on two providers: the version decides the model.
            "digest": {
                "model": "p-gpt",
                "variables": {"text": {"type": "string"}},
                "versions": {
                    "a": {"messages": [{"role": "user", "content": "Digest A: {{text}}"}]},
                    "b": {"model": "p-claude", "messages": [{"role": "user", "content": "Digest B: {{text}}"}]},
                },
                "weights": {"a": 50, "b": 50},
            },
        },
        # Every request for p-forced gets summarize@1, whatever it asks.
        "forced_templates": [{"match": {"model": "p-forced"}, "template": "summarize", "version": "1"}],
        "prompt_apis": {
            "/v1/prompts/summarize": {"template": "summarize"},
            "/v1/prompts/digest": {"template": "digest"},
            "/v1/prompts/digest-b": {"template": "digest", "version": "b"},
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


def test_a_forced_template_applies_with_only_variables_passed(gw, fake_requests):
    reply = oa(gw).chat.completions.create(
        model="p-forced", messages=[{"role": "user", "content": "thanks"}],
        extra_body={"llm_gateway_template": {"variables": {"text": "forced text"}}})
    assert reply.choices[0].message.content.startswith("echo: Summarize: forced text")
    assert fake_requests.last()["body"]["messages"][0] == {"role": "system", "content": "You summarize (short)."}
    with pytest.raises(openai.BadRequestError) as err:
        oa(gw).chat.completions.create(model="p-forced", messages=[{"role": "user", "content": "x"}])
    assert err.value.code == "missing_variable"
    with pytest.raises(openai.BadRequestError) as err:
        oa(gw).chat.completions.create(
            model="p-forced", messages=[{"role": "user", "content": "x"}],
            extra_body={"llm_gateway_template": {"name": "digest", "variables": {"text": "x"}}})
    assert err.value.code == "template_forced"


def test_a_template_may_supply_every_message(gw, fake_requests):
    reply = oa(gw).chat.completions.create(
        model="p-gpt", messages=[],
        extra_body={"llm_gateway_template": {"name": "summarize", "variables": {"text": "only the template"}}})
    assert reply.choices[0].message.content.startswith("echo: Summarize: only the template")
    # Without a template an empty list is still the client's error, in its own API's words.
    with pytest.raises(openai.BadRequestError) as err:
        oa(gw).chat.completions.create(model="p-gpt", messages=[])
    assert "empty array" in err.value.message
    with pytest.raises(anthropic.BadRequestError):
        anthropic.Anthropic(base_url=gw.base_url, api_key="sk-x", max_retries=0).messages.create(
            model="p-claude", max_tokens=10, messages=[])


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


# ----------------------------------------------------------------------------- prompt APIs


def post_prompt(gw, path: str, body, **kwargs) -> httpx.Response:
    return httpx.post(f"{gw.base_url}{path}", json=body, timeout=10, **kwargs)


def sse_events(text: str) -> list[dict]:
    return [json.loads(block.removeprefix("data: ")) for block in text.split("\n\n") if block.strip()]


def test_prompt_api_answers_output_and_usage(gw, fake_requests):
    r = post_prompt(gw, "/v1/prompts/summarize", {"text": "the cat sat", "style": "long"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    answer = r.json()
    assert answer["output"].startswith("echo: Summarize: the cat sat")
    assert answer["template"] == "summarize" and answer["version"] == "1"
    assert answer["stop_reason"] == "stop"
    usage = answer["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    sent = fake_requests.last()
    assert sent["path"] == "/v1/chat/completions"
    assert sent["body"]["model"] == "gpt-4o-mini"
    assert sent["body"]["messages"][0] == {"role": "system", "content": "You summarize (long)."}
    # The log shows the path the client called, not the provider's.
    assert gw.wait_log_line(lambda l: '"POST /v1/prompts/summarize" 200' in l and "template=summarize@1" in l)


def test_prompt_api_streams_deltas_then_a_closing_event(gw, fake_requests):
    with httpx.stream("POST", f"{gw.base_url}/v1/prompts/summarize",
                      json={"text": "a long story", "stream": True}, timeout=10) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = r.read().decode()
    events = sse_events(text)
    *deltas, last = events
    assert deltas and all(set(d) == {"delta"} for d in deltas)
    assert "".join(d["delta"] for d in deltas).startswith("echo: Summarize: a long story")
    assert last["output_done"] is True and last["version"] == "1"
    assert last["usage"]["output_tokens"] > 0
    assert fake_requests.last()["body"]["stream"] is True


def test_prompt_api_translates_to_the_versions_provider(gw, fake_requests):
    r = post_prompt(gw, "/v1/prompts/digest-b", {"text": "tea"})
    assert r.status_code == 200, r.text
    assert r.json()["output"] == "echo: Digest B: tea"
    sent = fake_requests.last()
    assert sent["path"] == "/v1/messages"
    assert sent["body"]["model"] == "claude-sonnet-4-5"


def test_weighted_versions_split_traffic_and_are_labelled(gw, fake_requests):
    def served(text, version):
        return metric_value(text, "gen_ai_server_requests", llm_prompt_template=f"digest@{version}",
                            http_status_code="200") or 0

    before = gw.prometheus()
    versions = [post_prompt(gw, "/v1/prompts/digest", {"text": "x"}).json()["version"] for _ in range(24)]
    assert set(versions) == {"a", "b"}, versions
    paths = [r["path"] for r in fake_requests.wait_for(24)]
    assert paths.count("/v1/messages") == versions.count("b")
    after = gw.prometheus()
    for version in ("a", "b"):
        assert served(after, version) - served(before, version) == versions.count(version)


def test_prompt_api_input_errors_are_400_naming_the_variable(gw, fake_requests):
    r = post_prompt(gw, "/v1/prompts/summarize", {"style": "short"})
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["param"], error["code"]) == ("text", "missing_variable")
    r = post_prompt(gw, "/v1/prompts/summarize", {"text": "x", "colour": "red"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "colour"
    r = httpx.post(f"{gw.base_url}/v1/prompts/summarize", content=b"not json", timeout=10)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_body"
    assert fake_requests() == []


def test_guard_violations_are_counted_by_rule(gw, fake_requests):
    before = metric_value(gw.prometheus(), "llm_gateway_rejections", llm_guard_rule="no-secrets") or 0
    r = post_prompt(gw, "/v1/prompts/summarize", {"text": "the password: swordfish"})
    assert r.status_code == 400
    assert "no-secrets" in r.json()["error"]["message"] and "swordfish" not in r.text
    assert fake_requests() == []
    after = metric_value(gw.prometheus(), "llm_gateway_rejections", llm_guard_rule="no-secrets",
                         llm_reason="prompt_blocked")
    assert after == before + 1


# ----------------------------------------------------------------------------- item 21: obfuscation

OBFUSCATION_CONFIG = {
    **CONFIG,
    "prompts": {**CONFIG["prompts"],
                "guards": {"deny": [{"name": "no-secrets", "regex": "(?i)password\\s*:"}],
                           "mask": [{"name": "email", "builtin": "email"}, {"name": "card", "builtin": "credit_card"}]}},
}


def tool_history(arguments: dict) -> list[dict]:
    """An OpenAI conversation whose assistant turn called a tool with these arguments."""
    return [
        {"role": "user", "content": "look it up"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "lookup", "arguments": json.dumps(arguments)}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
    ]


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "my pass\u200bword: hunter2"}],
    [{"role": "user", "content": "my ｐａｓｓｗｏｒｄ： hunter2"}],
    [{"role": "user", "content": "my pass\u00adword\ufeff: hunter2"}],
    tool_history({"password: hunter2": "x"}),
    tool_history({"note": {"ｐａｓｓ\u200dｗｏｒｄ:": 1}}),
], ids=["zero-width", "full-width", "soft-hyphen-bom", "tool-argument-key", "obfuscated-nested-key"])
def test_deny_rules_see_through_obfuscation_and_argument_keys(shared_gateway, fake_requests, messages):
    gw = shared_gateway(OBFUSCATION_CONFIG)
    with pytest.raises(openai.BadRequestError) as err:
        oa(gw).chat.completions.create(model="p-gpt", messages=messages)
    assert "no-secrets" in err.value.message
    assert fake_requests() == [], "a denied prompt never reaches the provider"


def test_deny_rules_see_anthropic_tool_input_keys(shared_gateway, fake_requests):
    gw = shared_gateway(OBFUSCATION_CONFIG)
    with pytest.raises(anthropic.BadRequestError):
        anthropic.Anthropic(base_url=gw.base_url, api_key="sk-x", max_retries=0).messages.create(
            model="p-claude", max_tokens=10,
            messages=[{"role": "user", "content": "look it up"},
                      {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "lookup",
                                                         "input": {"pass\u2060word:": "x"}}]},
                      {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}])
    assert fake_requests() == []


def test_masks_catch_every_spelling_and_the_provider_never_sees_it(shared_gateway, fake_requests):
    gw = shared_gateway(OBFUSCATION_CONFIG)
    spellings = ["4111.1111.1111.1111", "4111 1111 1111 1111", "4111-1111-1111-1111",
                 "４１１１ １１１１ １１１１ １１１１", "4111\u200b1111\u200b1111\u200b1111", "٤١١١١١١١١١١١١١١١"]
    content = "cards: " + " | ".join(spellings) + " mail ａｄａ＠ｅｘａｍｐｌｅ．ｃｏｍ"
    messages = [{"role": "user", "content": content}] + tool_history(
        {"5500 0000 0000 0004": 5500000000000004, "contact": "ada\u200b@example.com"})[1:] + [
        {"role": "user", "content": "thanks"}]
    r = oa(gw).chat.completions.create(model="p-gpt", messages=messages)
    assert r.choices
    sent = json.dumps(fake_requests.last()["body"], ensure_ascii=False)
    for secret in spellings + ["5500", "ａｄａ", "ada"]:
        assert secret not in sent, f"{secret!r} reached the provider: {sent}"
    assert sent.count("[CREDIT_CARD]") == len(spellings) + 2
    assert sent.count("[EMAIL]") == 2
