"""Prompt caching through real Envoy with the official SDKs (issue 13, "Prompt-caching hints
survive translation").

- Claude Code's pattern (breakpoints on tools, system and the newest user block) through the
  gateway to Bedrock's Claude: the cachePoint blocks arrive, the fake Bedrock caches like
  Bedrock (integration/fake_dialects/bedrock.py), and the second turn reads what the first
  wrote, in the usage the client sees and in the cost the gateway books.
- The IR path of same-dialect pairs (taken when prompts are configured): Anthropic keeps its
  `cache_control`, OpenAI its `prompt_cache_key` / `prompt_cache_retention`.
- Cached-token usage from every provider reaches both client dialects and the price table.
- 1-hour cache writes (Anthropic `cache_creation`, Bedrock `cacheDetails`) are booked at the
  table's `cache_write_1h`, in the access log's cost.
"""

from __future__ import annotations

import hashlib
import json
import math
import pathlib
import re
import uuid
from decimal import Decimal

import anthropic
import openai
import pytest

import harness

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLIENT_KEY = "sk-cache-client"
BEDROCK_CLAUDE = "anthropic.claude-sonnet-4-5-20250929-v1:0"
PROVIDERS = harness.fake_providers("oa", "an", "ge", "br")
MODELS = {
    "c-openai": ("oa", "gpt-4o-mini"),
    "c-claude": ("an", "claude-sonnet-4-5"),
    "c-gemini": ("ge", "gemini-2.5-flash"),
    "c-bedrock": ("br", BEDROCK_CLAUDE),
}
# A consumer with a plan: the gateway then prices every answer (cost_usd_micros in the log).
CONFIG = {
    "providers": PROVIDERS,
    "models": {name: {"provider": p, "model": m} for name, (p, m) in MODELS.items()},
    "consumers": {"cc": {"api_keys": [hashlib.sha256(CLIENT_KEY.encode()).hexdigest()], "plan": "big"}},
    "plans": {"big": {"limits": [{"name": "day", "window": "day", "tokens": 100_000_000}]}},
}
# The same with a decorator: every pair, same-dialect ones included, goes through the IR.
DECORATED = {**CONFIG, "prompts": {"decorators": [
    {"name": "house", "append": [{"role": "system", "content": "HOUSE-RULES"}, {"role": "user", "content": "USER-TAIL"}]},
]}}


def price(model: str) -> dict:
    table = json.loads((ROOT / "src/quota/prices.json").read_text())
    for provider in table["providers"].values():
        if model in provider.get("models", {}):
            return provider["models"][model]
    raise AssertionError(f"no price for {model}")


def expected_cost(model: str, fresh: int, read: int, write: int, output: int, write_1h: int = 0) -> int:
    """The price table's rule, written independently: USD per million tokens, cached input and
    cache writes at the input price where the table has none, 1-hour writes (`write_1h` of the
    `write`) at `cache_write_1h`, rounded up to whole micro-USD."""
    p = price(model)
    rate = {k: Decimal(p.get(k, p["input"] if k != "output" else p["output"])) for k in
            ("input", "cached_input", "cache_write", "output")}
    rate_1h = Decimal(p["cache_write_1h"]) if write_1h else Decimal(0)
    usd = (fresh * rate["input"] + read * rate["cached_input"] + (write - write_1h) * rate["cache_write"]
           + write_1h * rate_1h + output * rate["output"]) / Decimal(1_000_000)
    return math.ceil(usd * 1_000_000)


def logged_cost(gw, lines_before: int) -> int:
    lines = gw.access_log_lines(min_lines=lines_before + 1)
    assert len(lines) == lines_before + 1, lines[lines_before:]
    found = re.search(r"cost_usd_micros=(\d+)", lines[-1])
    assert found, lines[-1]
    return int(found.group(1))


@pytest.fixture
def gw(shared_gateway):
    return shared_gateway(CONFIG)


def claude_code_request(tag: str, turns: list[str]) -> dict:
    """Claude Code's shape: cached tools and system, then the conversation with the newest user
    block marked (earlier turns answered by the fake's echo)."""
    messages = []
    for i, text in enumerate(turns):
        if i:
            messages.append({"role": "assistant", "content": [{"type": "text", "text": f"echo: {turns[i - 1]}"}]})
        block = {"type": "text", "text": text}
        if i == len(turns) - 1:
            block["cache_control"] = {"type": "ephemeral"}
        messages.append({"role": "user", "content": [block]})
    return {
        "max_tokens": 100,
        "tools": [{"name": "Read", "description": "Read a file", "cache_control": {"type": "ephemeral", "ttl": "1h"},
                   "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}}}],
        "system": [{"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
                   {"type": "text", "text": f"Session {tag}: work in /home/dev/app and keep answers short.",
                    "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        "messages": messages,
    }


def claude_call(gw, stream: bool, body: dict):
    """The answer and its cache writes by TTL (`usage.cache_creation`). A translated stream
    learns the usage at its end and reports it in `message_delta`, whose usage the SDK's
    accumulated message does not take `cache_creation` from: read it off that event."""
    client = anthropic.Anthropic(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0)
    if stream:
        with client.messages.stream(model="c-bedrock", **body) as s:
            events = list(s)
            message = s.get_final_message()
        text = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
        assert message.content[0].text == text
        delta = next(e for e in events if e.type == "message_delta")
        return message, (delta.usage.model_extra or {}).get("cache_creation")
    message = client.messages.create(model="c-bedrock", **body)
    return message, message.usage.cache_creation.model_dump() if message.usage.cache_creation else None


def words(text: str) -> int:
    return len(text.split())


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_claude_code_through_the_gateway_to_bedrock_keeps_prompt_caching(gw, fake_requests, stream):
    tag = uuid.uuid4().hex  # a prefix no other test has cached
    turn1 = ["why does the build fail?"]
    turn2 = turn1 + ["fix it please"]

    before = len(gw.access_log_lines())
    first, split1 = claude_call(gw, stream, claude_code_request(tag, turn1))
    sent = fake_requests.last()
    assert "/converse" in sent["path"] and BEDROCK_CLAUDE.replace(":", "%3A") in sent["path"]
    body = sent["body"]
    point_1h = {"cachePoint": {"type": "default", "ttl": "1h"}}
    assert body["toolConfig"]["tools"][-1] == point_1h, body["toolConfig"]
    assert body["system"][-1] == point_1h and "text" in body["system"][-2], body["system"]
    assert body["messages"][-1]["content"] == [{"text": turn1[0]}, {"cachePoint": {"type": "default"}}]

    # The fake counts a prefix as its words + 2 per message: system texts + 2 for the turn + 5.
    system_words = words("You are Claude Code, Anthropic's official CLI for Claude.") + words(
        f"Session {tag}: work in /home/dev/app and keep answers short.")
    written1 = system_words + 2 + words(turn1[0])
    assert first.usage.cache_creation_input_tokens == written1
    assert first.usage.cache_read_input_tokens in (0, None)
    assert first.usage.input_tokens == 0, "every input token went to the cache"
    # The system's 1-hour point closes the system texts: those are 1-hour writes, the turn's
    # tokens (closed by the last, 5-minute point) are 5-minute ones.
    assert split1 == {"ephemeral_5m_input_tokens": written1 - system_words, "ephemeral_1h_input_tokens": system_words}
    out1 = first.usage.output_tokens
    assert logged_cost(gw, before) == expected_cost(BEDROCK_CLAUDE, 0, 0, written1, out1, write_1h=system_words)

    before = len(gw.access_log_lines())
    second, split2 = claude_call(gw, stream, claude_code_request(tag, turn2))
    body = fake_requests.last()["body"]
    assert [b for b in body["messages"][0]["content"] if "cachePoint" in b] == [], "the breakpoint moved on"
    total2 = system_words + 3 * 2 + words(turn2[0]) + words(f"echo: {turn2[0]}") + words(turn2[1])
    assert second.usage.cache_read_input_tokens == written1, "turn 2 reads what turn 1 wrote"
    assert second.usage.cache_creation_input_tokens == total2 - written1
    assert second.usage.input_tokens == 0
    assert split2 == {"ephemeral_5m_input_tokens": total2 - written1, "ephemeral_1h_input_tokens": 0}
    cost2 = logged_cost(gw, before)
    assert cost2 == expected_cost(BEDROCK_CLAUDE, 0, written1, total2 - written1, second.usage.output_tokens)
    uncached = expected_cost(BEDROCK_CLAUDE, total2, 0, 0, second.usage.output_tokens)
    assert cost2 < uncached, (cost2, uncached)


ONE_HOUR_SYSTEM = [{"type": "text", "text": "a long and stable system prompt",
                    "cache_control": {"type": "ephemeral", "ttl": "1h"}}]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("client_kind", ["anthropic", "openai"])
def test_one_hour_cache_writes_cost_the_one_hour_price(gw, client_kind, stream):
    """Anthropic answers a 1-hour breakpoint with 1-hour writes (usage.cache_creation); the
    gateway books them at the table's cache_write_1h (2x input), not at the 5-minute price, for
    the Anthropic client (passthrough) and the OpenAI client (translated) alike."""
    written = 40
    headers = {"x-fake-cache-write": str(written)}
    before = len(gw.access_log_lines())
    if client_kind == "anthropic":
        client = anthropic.Anthropic(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0,
                                     default_headers=headers)
        body = {"model": "c-claude", "max_tokens": 50, "system": ONE_HOUR_SYSTEM,
                "messages": [{"role": "user", "content": PROMPT}]}
        if stream:
            with client.messages.stream(**body) as s:
                message = s.get_final_message()
        else:
            message = client.messages.create(**body)
        u = message.usage
        assert (u.cache_creation_input_tokens, u.cache_creation.ephemeral_1h_input_tokens) == (written, written)
        fresh, output = u.input_tokens, u.output_tokens
    else:
        client = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=CLIENT_KEY, max_retries=0,
                               default_headers=headers)
        messages = [{"role": "system", "content": ONE_HOUR_SYSTEM[0]["text"]}, {"role": "user", "content": PROMPT}]
        # OpenAI's chat API has no cache_control; the Anthropic fake's x-fake-cache-write-1h stands
        # for the breakpoint an Anthropic request would carry.
        client = client.with_options(default_headers={**headers, "x-fake-cache-write-1h": str(written)})
        if stream:
            chunks = list(client.chat.completions.create(model="c-claude", messages=messages, stream=True,
                                                         stream_options={"include_usage": True}))
            usage = chunks[-1].usage
        else:
            usage = client.chat.completions.create(model="c-claude", messages=messages).usage
        fresh, output = usage.prompt_tokens - written, usage.completion_tokens
    cost = logged_cost(gw, before)
    assert cost == expected_cost("claude-sonnet-4-5", fresh, 0, written, output, write_1h=written)
    assert cost > expected_cost("claude-sonnet-4-5", fresh, 0, written, output), "dearer than 5-minute writes"


def test_anthropic_ir_path_keeps_cache_control(shared_gateway, fake_requests):
    gw = shared_gateway(DECORATED)
    client = anthropic.Anthropic(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0)
    client.messages.create(
        model="c-claude", max_tokens=50, cache_control={"type": "ephemeral"},
        system=[{"type": "text", "text": "client system", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
        messages=[{"role": "user", "content": [{"type": "text", "text": "q1", "cache_control": {"type": "ephemeral"}}]}])
    body = fake_requests.last()["body"]
    assert body["cache_control"] == {"type": "ephemeral"}
    assert body["system"] == [
        {"type": "text", "text": "client system", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": "HOUSE-RULES"},
    ], "the decorator's text goes after the breakpoint, which stays on the client's block"
    assert body["messages"][-1]["content"] == [
        {"type": "text", "text": "q1", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "USER-TAIL"},
    ]


def test_openai_ir_path_keeps_prompt_cache_key(shared_gateway, fake_requests):
    gw = shared_gateway(DECORATED)
    client = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=CLIENT_KEY, max_retries=0)
    client.chat.completions.create(model="c-openai", messages=[{"role": "user", "content": "hi"}],
                                   prompt_cache_key="acme-support-v3", prompt_cache_retention="24h")
    body = fake_requests.last()["body"]
    assert "USER-TAIL" in json.dumps(body["messages"]), "decorated, so through the IR"
    assert (body["prompt_cache_key"], body["prompt_cache_retention"]) == ("acme-support-v3", "24h")


# Each provider's cache counts (set by the fakes' x-fake-cache-read / -write) as each client
# sees them, and priced by the table. OpenAI and Gemini report reads only.
CACHE_HEADERS = {
    "c-openai": {"x-fake-cache-read": "3"},
    "c-claude": {"x-fake-cache-read": "3", "x-fake-cache-write": "2"},
    "c-gemini": {"x-fake-cache-read": "3"},
    "c-bedrock": {"x-fake-cache-read": "3", "x-fake-cache-write": "2"},
}
PROMPT = "one two three four five six seven"  # 7 words + 2 = 9 prompt tokens at every fake
# The Anthropic fake reports the cache counts besides its 9 input tokens, as the API does;
# the others count them inside the 9 (Bedrock's inputTokens is what is left).
FRESH = {"c-openai": 9 - 3, "c-claude": 9, "c-gemini": 9 - 3, "c-bedrock": 9 - 3 - 2}


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("client_kind", ["openai", "anthropic"])
def test_cached_usage_and_cost_reach_every_client(gw, model, client_kind):
    headers = CACHE_HEADERS[model]
    read, write = int(headers["x-fake-cache-read"]), int(headers.get("x-fake-cache-write", "0"))
    before = len(gw.access_log_lines())
    if client_kind == "openai":
        reply = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=CLIENT_KEY, max_retries=0,
                              default_headers=headers).chat.completions.create(
            model=model, messages=[{"role": "user", "content": PROMPT}])
        output = reply.usage.completion_tokens
        assert reply.usage.prompt_tokens_details.cached_tokens == read
        assert reply.usage.prompt_tokens == FRESH[model] + read + write, "includes cached and cache-written tokens"
    else:
        message = anthropic.Anthropic(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0,
                                      default_headers=headers).messages.create(
            model=model, max_tokens=50, messages=[{"role": "user", "content": PROMPT}])
        u = message.usage
        assert (u.cache_read_input_tokens, u.cache_creation_input_tokens or 0) == (read, write)
        assert u.input_tokens == FRESH[model], "Anthropic's input_tokens excludes the cache counts"
        output = u.output_tokens
    target = MODELS[model][1]
    assert logged_cost(gw, before) == expected_cost(target, FRESH[model], read, write, output)


# ----------------------------------------------------------------------------- Anthropic-only features

WEB_SEARCH = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
MCP = [{"type": "url", "url": "https://example-server.modelcontextprotocol.io/sse", "name": "example-mcp"}]


def test_anthropic_only_features_pass_through_to_anthropic(shared_gateway, fake_requests):
    """Through the IR (a decorator applies): server tools, their blocks in the history,
    mcp_servers and container reach Anthropic as the client sent them."""
    gw = shared_gateway(DECORATED)
    client = anthropic.Anthropic(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0)
    history = [
        {"role": "user", "content": "When was Claude Shannon born?"},
        {"role": "assistant", "content": [
            {"type": "server_tool_use", "id": "srvtoolu_01", "name": "web_search", "input": {"query": "claude shannon"}},
            {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_01", "content": [
                {"type": "web_search_result", "url": "https://en.wikipedia.org/wiki/Claude_Shannon",
                 "title": "Claude Shannon - Wikipedia", "encrypted_content": "EqgfCioIARgB", "page_age": "April 30, 2025"}]},
            {"type": "text", "text": "He was born on April 30, 1916."}]},
        {"role": "user", "content": "where did he study"},
    ]
    message = client.messages.create(model="c-claude", max_tokens=50, tools=[WEB_SEARCH], messages=history,
                                     extra_body={"mcp_servers": MCP, "container": "container_011CPR5C"})
    assert message.content[0].text.startswith("echo: where did he study")
    body = fake_requests.last()["body"]
    assert body["tools"] == [WEB_SEARCH]
    assert (body["mcp_servers"], body["container"]) == (MCP, "container_011CPR5C")
    assert body["messages"][1]["content"] == history[1]["content"]


def test_anthropic_only_features_are_refused_elsewhere(gw, fake_requests):
    fake_requests.clear()
    client = anthropic.Anthropic(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0)
    for model in ("c-bedrock", "c-gemini", "c-openai"):
        with pytest.raises(anthropic.BadRequestError) as refused:
            client.messages.create(model=model, max_tokens=50, tools=[WEB_SEARCH],
                                   messages=[{"role": "user", "content": "news?"}])
        message = refused.value.body["error"]["message"]
        assert message.startswith("tools.0.type is not supported by provider"), message
        assert "web_search_20250305" in message
    assert fake_requests() == []
