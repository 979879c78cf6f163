"""The fake provider's Anthropic Messages dialect on its own (no Envoy): wire shapes,
validation, usage arithmetic, streaming events and test controls. The official
`anthropic` SDK parses every answer, as a real client would."""

from __future__ import annotations

import json

import anthropic
import httpx
import pytest

URL = "/v1/messages"
KEY = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}


@pytest.fixture
def client(fake, fake_requests):
    with httpx.Client(base_url=fake.base_url, timeout=10) as c:
        yield c


@pytest.fixture
def sdk(fake, fake_requests):
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=fake.base_url, max_retries=0)


def body(text="hello big world", **extra):
    return {"model": "claude-test", "max_tokens": 100,
            "messages": [{"role": "user", "content": text}], **extra}


def sse(text: str) -> list[tuple[str, dict]]:
    assert text.endswith("\n\n"), repr(text[-40:])
    out = []
    for block in text.split("\n\n")[:-1]:
        lines = block.split("\n")
        assert len(lines) == 2 and lines[0].startswith("event: ") and lines[1].startswith("data: "), block
        name, data = lines[0][len("event: "):], json.loads(lines[1][len("data: "):])
        assert data["type"] == name
        out.append((name, data))
    return out


def assert_error(resp, status, type_, part=None):
    assert resp.status_code == status, resp.text
    b = resp.json()
    assert b["type"] == "error" and set(b) == {"type", "error", "request_id"}
    assert b["error"]["type"] == type_
    assert resp.headers["request-id"] == b["request_id"]
    if part:
        assert part in b["error"]["message"], b["error"]["message"]
    return b["error"]["message"]


def test_message_shape_and_usage(client):
    req = body(system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
               messages=[{"role": "user", "content": "hi there"},
                         {"role": "assistant", "content": "hello"},
                         {"role": "user", "content": [{"type": "text", "text": "hello big"},
                                                      {"type": "text", "text": "world"}]}])
    r = client.post(URL, json=req, headers=KEY)
    assert r.status_code == 200, r.text
    m = r.json()
    assert m["type"] == "message" and m["role"] == "assistant" and m["model"] == "claude-test"
    assert m["id"].startswith("msg_")
    assert m["content"] == [{"type": "text", "text": "echo: hello big world"}]
    assert (m["stop_reason"], m["stop_sequence"]) == ("end_turn", None)
    # system 2 words + 2, messages 2 + 1 + 3 words + 2 * 3
    assert m["usage"]["input_tokens"] == 4 + 6 + 6
    assert m["usage"]["output_tokens"] == 4
    assert m["usage"]["cache_read_input_tokens"] == 0
    assert m["usage"]["cache_creation"] == {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}


def test_cache_writes_by_ttl(client):
    """Writes are 1-hour ones when every breakpoint asks for 1h, else x-fake-cache-write-1h of them."""
    def split(system_ttls, **extra):
        system = [{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral", **ttl}}
                  for i, ttl in enumerate(system_ttls)]
        r = client.post(URL, json=body(system=system), headers={**KEY, "x-fake-cache-write": "10", **extra})
        assert r.status_code == 200, r.text
        u = r.json()["usage"]
        assert u["cache_creation_input_tokens"] == 10
        return u["cache_creation"]["ephemeral_1h_input_tokens"], u["cache_creation"]["ephemeral_5m_input_tokens"]

    assert split([{"ttl": "1h"}, {"ttl": "1h"}]) == (10, 0)
    assert split([{"ttl": "1h"}, {}]) == (0, 10)
    assert split([{"ttl": "1h"}, {"ttl": "5m"}], **{"x-fake-cache-write-1h": "4"}) == (4, 6)


def test_sdk_parses_message_and_stream(sdk):
    msg = sdk.messages.create(model="claude-test", max_tokens=50,
                              messages=[{"role": "user", "content": "one two"}])
    assert msg.content[0].text == "echo: one two"
    with sdk.messages.stream(model="claude-test", max_tokens=50,
                             messages=[{"role": "user", "content": "one two"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "echo: one two" == final.content[0].text
    assert final.usage.input_tokens == msg.usage.input_tokens
    assert final.usage.output_tokens == msg.usage.output_tokens == 3
    assert final.stop_reason == "end_turn"


def test_stream_event_sequence(client):
    r = client.post(URL, json=body("a b", stream=True), headers={**KEY, "x-fake-cache-read": "7"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = sse(r.text)
    names = [n for n, _ in events]
    assert names == ["message_start", "content_block_start", "ping", "content_block_delta",
                     "content_block_delta", "content_block_delta", "content_block_stop",
                     "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["usage"]["output_tokens"] == 1 and start["usage"]["cache_read_input_tokens"] == 7
    assert "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta") == "echo: a b"
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["output_tokens"] == 3  # cumulative
    assert delta["usage"]["input_tokens"] == start["usage"]["input_tokens"]


def test_tool_call_control_and_round_trip(client, sdk):
    tools = [{"name": "lookup", "description": "find", "input_schema": {"type": "object"}}]
    r = client.post(URL, json=body("find cats", tools=tools),
                    headers={**KEY, "x-fake-tool-call": "lookup"})
    m = r.json()
    assert m["stop_reason"] == "tool_use"
    (call,) = m["content"]
    assert call["type"] == "tool_use" and call["name"] == "lookup"
    assert call["input"] == {"query": "find cats"}
    # streamed: input_json_delta pieces concatenate to the input
    with sdk.messages.stream(model="claude-test", max_tokens=50, tools=tools,
                             messages=[{"role": "user", "content": "find cats"}],
                             extra_headers={"x-fake-tool-call": "lookup"}) as stream:
        final = stream.get_final_message()
    assert final.content[0].input == {"query": "find cats"}
    assert final.stop_reason == "tool_use"
    # the result goes back; the echo is of the last user text
    history = [{"role": "user", "content": "find cats"},
               {"role": "assistant", "content": m["content"]},
               {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"],
                                             "content": "3 cats"}]}]
    r = client.post(URL, json=body(messages=history, tools=tools), headers=KEY)
    assert r.json()["content"][0]["text"] == "echo: find cats"
    r = client.post(URL, json=body(tools=tools), headers={**KEY, "x-fake-tool-call": "nope"})
    assert_error(r, 400, "invalid_request_error", "nope")


def test_thinking_blocks(client):
    req = body("why", max_tokens=3000, thinking={"type": "enabled", "budget_tokens": 1024}, stream=True)
    events = sse(client.post(URL, json=req, headers=KEY).text)
    starts = [d["content_block"]["type"] for n, d in events if n == "content_block_start"]
    assert starts == ["thinking", "text"]
    deltas = [d["delta"]["type"] for n, d in events if n == "content_block_delta"]
    assert deltas == ["thinking_delta"] * 3 + ["signature_delta"] + ["text_delta"] * 2
    m = client.post(URL, json={**req, "stream": False}, headers=KEY).json()
    assert m["content"][0]["type"] == "thinking" and m["content"][0]["signature"].startswith("fake-sig-")
    # signed thinking goes back in history
    history = [{"role": "user", "content": "why"}, {"role": "assistant", "content": m["content"]},
               {"role": "user", "content": "ok"}]
    assert client.post(URL, json={**req, "stream": False, "messages": history}, headers=KEY).status_code == 200
    unsigned = [{"role": "user", "content": "why"},
                {"role": "assistant", "content": [{"type": "thinking", "thinking": "x"}]},
                {"role": "user", "content": "ok"}]
    assert_error(client.post(URL, json=body(messages=unsigned), headers=KEY), 400,
                 "invalid_request_error", "signature")


def test_stop_sequence_and_max_tokens(client):
    m = client.post(URL, json=body("a STOP b", stop_sequences=["STOP"]), headers=KEY).json()
    assert (m["stop_reason"], m["stop_sequence"]) == ("stop_sequence", "STOP")
    assert m["content"][0]["text"] == "echo: a "
    m = client.post(URL, json=body("a b c d", max_tokens=2), headers=KEY).json()
    assert m["stop_reason"] == "max_tokens" and m["content"][0]["text"] == "echo: a"


def test_auth_version_and_status_controls(client):
    assert_error(client.post(URL, json=body(), headers={"anthropic-version": "2023-06-01"}),
                 401, "authentication_error", "x-api-key")
    bearer = {"authorization": "Bearer sk-ant-x", "anthropic-version": "2023-06-01"}
    assert client.post(URL, json=body(), headers=bearer).status_code == 200
    assert_error(client.post(URL, json=body(), headers={"x-api-key": "k"}),
                 400, "invalid_request_error", "anthropic-version")
    for status, type_ in [(429, "rate_limit_error"), (529, "overloaded_error"), (500, "api_error"),
                          (403, "permission_error"), (413, "request_too_large")]:
        assert_error(client.post(URL, json=body(), headers={**KEY, "x-fake-status": str(status)}),
                     status, type_)
    r = client.post(URL, json=body(), headers={**KEY, "x-fake-status": "502", "x-fake-error-body": "html"})
    assert r.status_code == 502 and r.headers["content-type"].startswith("text/html")


def test_sdk_sees_typed_errors(sdk):
    with pytest.raises(anthropic.RateLimitError):
        sdk.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}],
                            extra_headers={"x-fake-status": "429"})
    with pytest.raises(anthropic.BadRequestError):
        sdk.messages.create(model="m", max_tokens=5, messages=[{"role": "system", "content": "x"}])


def test_mid_stream_error(client, sdk):
    r = client.post(URL, json=body("a b c", stream=True),
                    headers={**KEY, "x-fake-stream-error": "overloaded"})
    events = sse(r.text)
    assert [n for n, _ in events][-2:] == ["content_block_delta", "error"]
    assert events[-1][1]["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    with pytest.raises(anthropic.APIStatusError):
        with sdk.messages.stream(model="m", max_tokens=50, messages=[{"role": "user", "content": "x"}],
                                 extra_headers={"x-fake-stream-error": "overloaded"}) as s:
            s.get_final_message()


@pytest.mark.parametrize("req, part", [
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}, "model: Field required"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens: Field required"),
    (body(messages=[]), "at least one message"),
    (body(messages=[{"role": "system", "content": "x"}]), "messages.0.role"),
    (body(messages=[{"role": "user", "content": ""}]), "non-empty content"),
    (body(messages=[{"role": "user", "content": [{"type": "bogus"}]}]), "messages.0.content.0"),
    (body(system=[{"type": "image"}]), "system.0"),
    (body(seed=1), "seed: Extra inputs are not permitted"),
    (body(thinking={"type": "enabled", "budget_tokens": 500}), "budget_tokens"),
    (body(thinking={"type": "enabled", "budget_tokens": 2000}), "max_tokens"),
    (body(tool_choice={"type": "auto"}), "tool_choice may only be specified"),
    (body(tools=[{"name": "has space", "input_schema": {"type": "object"}}]), "tools.0.custom.name"),
    (body(messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}}]}]),
     "media_type"),
    (body(messages=[{"role": "user", "content": "q"},
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                    {"role": "user", "content": "no result"}]), "`tool_use` ids were found"),
    (body(messages=[{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "t9", "content": "x"}]}]), "unexpected `tool_use_id`"),
])
def test_validation(client, req, part):
    assert_error(client.post(URL, json=req, headers=KEY), 400, "invalid_request_error", part)


def test_accepts_assistant_first_prefill_and_merged_turns(client):
    msgs = [{"role": "assistant", "content": "earlier"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
            {"role": "user", "content": "more"},
            {"role": "assistant", "content": ""}]
    r = client.post(URL, json=body(messages=msgs), headers=KEY)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "echo: more"


def test_requests_are_recorded(client, fake_requests):
    client.post(URL, json=body(), headers=KEY)
    rec = fake_requests.last()
    assert rec["path"] == URL and rec["headers"]["x-api-key"] == "sk-ant-test"
    assert rec["headers"]["anthropic-version"] == "2023-06-01"
    assert rec["body"]["max_tokens"] == 100
