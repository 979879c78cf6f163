"""What the gateway admits from a request body, through real Envoy (issue 10, items 2, 3, 16,
17, 18, 19): duplicate keys, several choices, the whole body estimated, Responses clamped,
output caps validated and clamped in the field the provider reads, images at their cost."""

from __future__ import annotations

import hashlib
import json

import anthropic
import httpx
import openai
import pytest

PROVIDERS = {
    "fake": {"kind": "openai", "cluster": "fake_openai", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
    "mis": {"kind": "mistral", "cluster": "fake_openai", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
    "claude": {"kind": "anthropic", "cluster": "fake_openai", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
}
MODELS = {"a-gpt": {"provider": "fake", "model": "gpt-4o"},
          "a-mistral": {"provider": "mis", "model": "mistral-small-latest"},
          "a-claude": {"provider": "claude", "model": "claude-sonnet-4-5"}}
MESSAGES = [{"role": "user", "content": "one two three"}]


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def config(tokens_per_minute: int, estimator: str = "upper-bound", min_output_tokens: int = 1) -> dict:
    return {
        "providers": PROVIDERS,
        "models": MODELS,
        "consumers": {"alice": {"api_keys": [digest("sk-alice")], "plan": "small"}},
        "plans": {"small": {"limits": [{"name": "tpm", "window": "minute", "tokens": tokens_per_minute}]}},
        "quota": {"clamp_max_tokens": True, "estimator": estimator, "min_output_tokens": min_output_tokens,
                  "default_max_output_tokens": 64},
    }


def oa(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="sk-alice", max_retries=0)


def an(gw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base_url, api_key="sk-alice", max_retries=0)


def raw_post(gw, path: str, body: bytes, **headers) -> httpx.Response:
    headers = {"content-type": "application/json", "authorization": "Bearer sk-alice",
               "x-api-key": "sk-alice", "anthropic-version": "2023-06-01", **headers}
    return httpx.post(f"{gw.base_url}{path}", content=body, headers=headers, timeout=10)


# ------------------------------------------------------------------- item 2: duplicate keys

def test_duplicate_keys_are_refused_in_the_clients_dialect(gateway, fake_requests):
    gw = gateway(config(1_000_000))
    # A small cap first, a huge one last: Envoy and the provider would read the last.
    r = raw_post(gw, "/v1/chat/completions",
                 b'{"model":"a-gpt","max_tokens":5,"messages":[{"role":"user","content":"hi"}],'
                 b'"max_tokens":100000}')
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", "max_tokens", "duplicate_key")
    assert "'max_tokens' at the top level" in error["message"]
    # The model too: json_to_metadata routed by the last one, the patch would write the first.
    r = raw_post(gw, "/v1/chat/completions",
                 b'{"model":"a-claude","messages":[{"role":"user","content":"hi"}],"model":"a-gpt"}')
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    # Nested objects the gateway or the decoders read.
    r = raw_post(gw, "/v1/chat/completions",
                 b'{"model":"a-gpt","stream":true,"stream_options":{"include_usage":true,"include_usage":false},'
                 b'"messages":[{"role":"user","content":"hi"}]}')
    assert r.status_code == 400 and r.json()["error"]["param"] == "stream_options.include_usage"
    r = raw_post(gw, "/v1/chat/completions",
                 b'{"model":"a-gpt","messages":[{"role":"user","content":"short","content":"' + b"long " * 3000 + b'"}]}')
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].content"
    # Translated (OpenAI client -> Anthropic provider) and the Anthropic client's own envelope.
    r = raw_post(gw, "/v1/chat/completions",
                 b'{"model":"a-claude","messages":[{"role":"user","content":"a","role":"system"}]}')
    assert r.status_code == 400 and r.json()["error"]["param"] == "messages[0].role"
    r = raw_post(gw, "/v1/messages",
                 b'{"model":"a-claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"max_tokens":9000}')
    assert r.status_code == 400
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "'max_tokens'" in body["error"]["message"]
    # Escaped spellings of one key are one key.
    r = raw_post(gw, "/v1/chat/completions",
                 b'{"model":"a-gpt","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"max\\u005ftokens":9}')
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_tokens"
    assert fake_requests() == [], "no refused body reaches the provider"
    # Sibling objects may repeat keys.
    assert oa(gw).chat.completions.create(
        model="a-gpt", messages=[{"role": "system", "content": "x"}, *MESSAGES]).choices


# ------------------------------------------------------------------- item 3: several choices

def test_several_choices_are_reserved_and_clamped_per_choice(gateway, fake_requests):
    gw = gateway(config(2_000))
    raw = oa(gw).chat.completions.with_raw_response.create(model="a-gpt", messages=MESSAGES, n=16, max_tokens=1000)
    sent = fake_requests.last()["body"]
    per_choice = sent["max_tokens"]
    assert sent["n"] == 16 and 1 <= per_choice < 1000
    assert "max_completion_tokens" not in sent, "OpenAI refuses both caps at once"
    reserved = 2_000 - int(raw.headers["x-ratelimit-remaining-tokens"])
    assert 16 * per_choice <= reserved <= 2_000


def test_choices_without_a_cap_get_the_default_output_each(gateway, fake_requests):
    gw = gateway(config(100_000))
    raw = oa(gw).chat.completions.with_raw_response.create(model="a-gpt", messages=MESSAGES, n=4)
    assert fake_requests.last()["body"]["max_completion_tokens"] == 64  # default_max_output_tokens
    assert 100_000 - int(raw.headers["x-ratelimit-remaining-tokens"]) >= 4 * 64


def test_choices_the_budget_cannot_pay_for_are_refused(gateway, fake_requests):
    gw = gateway(config(300, min_output_tokens=16))
    with pytest.raises(openai.RateLimitError) as err:
        oa(gw).chat.completions.create(model="a-gpt", messages=MESSAGES, n=16)
    assert "16 choices" in err.value.body["message"]
    assert fake_requests() == []
    # The refused reservation was given back: one choice fits.
    assert oa(gw).chat.completions.create(model="a-gpt", messages=MESSAGES).choices


@pytest.mark.parametrize("n", ['"16"', "0", "-1", "1.5", "129", "true"])
def test_bad_choice_counts_are_400(gateway, fake_requests, n):
    gw = gateway(config(1_000_000))
    r = raw_post(gw, "/v1/chat/completions", b'{"model":"a-gpt","messages":[{"role":"user","content":"hi"}],"n":'
                 + n.encode() + b"}")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "n"
    assert fake_requests() == []


# ------------------------------------------------------------------- item 16: the whole body

def test_passthrough_counts_system_tools_and_response_format(gateway, fake_requests):
    gw = gateway(config(2_000, estimator="fast"))
    with pytest.raises(anthropic.RateLimitError):
        an(gw).messages.create(model="a-claude", max_tokens=10, system="lorem ipsum " * 17_000, messages=MESSAGES)
    tools = [{"type": "function", "function": {"name": "f", "description": "word " * 20_000,
                                               "parameters": {"type": "object", "properties": {}}}}]
    with pytest.raises(openai.RateLimitError):
        oa(gw).chat.completions.create(model="a-gpt", messages=MESSAGES, tools=tools)
    schema = {"type": "object", "description": "word " * 20_000, "properties": {}}
    with pytest.raises(openai.RateLimitError):
        oa(gw).chat.completions.create(model="a-gpt", messages=MESSAGES, response_format={
            "type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    assert fake_requests() == []


# ------------------------------------------------------------------- items 17, 18: output caps

def test_responses_max_output_tokens_is_clamped(gateway, fake_requests):
    gw = gateway(config(500))
    raw = oa(gw).responses.with_raw_response.create(model="a-gpt", input="one two three", max_output_tokens=100_000)
    cap = fake_requests.last()["body"]["max_output_tokens"]
    assert cap < 500
    assert 500 - int(raw.headers["x-ratelimit-remaining-tokens"]) >= cap


def test_output_caps_are_validated_and_all_clamped(gateway, fake_requests):
    gw = gateway(config(500))
    for field in ("max_completion_tokens", "max_tokens"):
        with pytest.raises(openai.BadRequestError) as err:
            oa(gw).chat.completions.create(model="a-gpt", messages=MESSAGES, **{field: 0})
        assert err.value.body["param"] == field
    with pytest.raises(anthropic.BadRequestError):
        an(gw).messages.create(model="a-claude", max_tokens=0, messages=MESSAGES)
    assert fake_requests() == []
    # Both caps sent: both lowered to what the budget pays for.
    oa(gw).chat.completions.create(model="a-gpt", messages=MESSAGES, max_tokens=100_000,
                                   max_completion_tokens=90_000)
    sent = fake_requests.last()["body"]
    assert sent["max_tokens"] == sent["max_completion_tokens"] < 500


def test_the_clamp_goes_in_the_field_the_provider_reads(gateway, fake_requests):
    gw = gateway(config(500))
    # Mistral reads only `max_tokens`: the client's newer name alone would leave it unbounded.
    oa(gw).chat.completions.create(model="a-mistral", messages=MESSAGES, max_completion_tokens=100_000)
    sent = fake_requests.last()["body"]
    assert sent["max_tokens"] < 500
    # OpenAI reads `max_completion_tokens`: inserted when the client sent no cap.
    oa(gw).chat.completions.create(model="a-gpt", messages=MESSAGES)
    sent = fake_requests.last()["body"]
    assert sent["max_completion_tokens"] <= 64 and "max_tokens" not in sent


# ------------------------------------------------------------------- item 19: images

def image_messages(count: int) -> list[dict]:
    parts = [{"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}}] * count
    return [{"role": "user", "content": [{"type": "text", "text": "describe"}, *parts]}]


def test_images_cost_their_worst_case_at_admission(gateway, fake_requests):
    # 200 image URLs are about 15k bytes: admitted before under 100k tokens, billed over 150k.
    gw = gateway(config(100_000))
    with pytest.raises(openai.RateLimitError):
        oa(gw).chat.completions.create(model="a-gpt", messages=image_messages(200), max_tokens=10)
    assert fake_requests() == []
    # A few images fit, and the reservation holds each at OpenAI's worst case (3,779).
    raw = oa(gw).chat.completions.with_raw_response.create(model="a-gpt", messages=image_messages(3), max_tokens=10)
    assert 100_000 - int(raw.headers["x-ratelimit-remaining-tokens"]) >= 3 * 3_779
    # Anthropic image blocks on the Anthropic passthrough: Claude's 1,600 each.
    blocks = [{"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}] * 100
    with pytest.raises(anthropic.RateLimitError):
        an(gw).messages.create(model="a-claude", max_tokens=10,
                               messages=[{"role": "user", "content": [*blocks, {"type": "text", "text": "hi"}]}])
    raw = raw_post(gw, "/v1/responses", json.dumps({"model": "a-gpt", "max_output_tokens": 16, "input": [
        {"role": "user", "content": [{"type": "input_image", "image_url": "https://example.com/a.png"}] * 30}]}).encode())
    assert raw.status_code == 429


# ------------------------------------------------------------------- item 17: the prompt layer

def prompt_config() -> dict:
    return {
        "providers": {"fake": PROVIDERS["fake"]},
        "models": {"a-gpt": {"provider": "fake", "model": "gpt-4o"},
                   "a-emb": {"provider": "fake", "model": "text-embedding-3-small"},
                   "a-deco": {"provider": "fake", "model": "gpt-4o"},
                   "a-forced": {"provider": "fake", "model": "text-embedding-3-small"}},
        "prompts": {
            "templates": {"fixed": {"versions": {"1": {"messages": [{"role": "system", "content": "Be brief."}]}}}},
            "guards": {"deny": [{"name": "secrets", "regex": "password\\s*[:=]"}],
                       "mask": [{"name": "email", "builtin": "email"}]},
            "decorators": [{"name": "house-style", "match": {"model": "a-deco"},
                            "prepend": [{"role": "system", "content": "House style."}]}],
            "forced_templates": [{"match": {"model": "a-forced"}, "template": "fixed"}],
        },
    }


def test_responses_and_embeddings_get_guards_and_masks(gateway, fake_requests):
    gw = gateway(prompt_config())
    client = oa(gw)
    for call in (lambda: client.responses.create(model="a-gpt", input="my password: hunter2"),
                 lambda: client.responses.create(model="a-gpt", input="hi", instructions="password = x"),
                 lambda: client.embeddings.create(model="a-emb", input=["fine", "password: hunter2"])):
        with pytest.raises(openai.BadRequestError) as err:
            call()
        assert err.value.body["code"] == "prompt_blocked"
    assert fake_requests() == []
    client.responses.create(model="a-gpt", instructions="answer ada@example.com", input=[
        {"role": "user", "content": [{"type": "input_text", "text": "mail bob@example.com"}]}])
    sent = fake_requests.last()["body"]
    assert sent["instructions"] == "answer [EMAIL]"
    assert sent["input"][0]["content"][0]["text"] == "mail [EMAIL]"
    client.embeddings.create(model="a-emb", input=["ada@example.com", "plain"])
    assert fake_requests.last()["body"]["input"] == ["[EMAIL]", "plain"]


def test_templates_and_decorators_that_cannot_apply_are_refused(gateway, fake_requests):
    gw = gateway(prompt_config())
    client = oa(gw)
    for call in (lambda: client.responses.create(model="a-deco", input="hi"),
                 lambda: client.embeddings.create(model="a-forced", input="hi"),
                 lambda: client.embeddings.create(model="a-emb", input=[[1, 2, 3]])):
        with pytest.raises(openai.BadRequestError) as err:
            call()
        assert err.value.body["code"] == "prompt_layer_not_applicable"
    assert fake_requests() == []
