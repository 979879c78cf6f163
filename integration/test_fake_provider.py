"""The fake OpenAI provider on its own (no Envoy, no wasm): wire shapes, usage arithmetic,
validation, test controls and request recording."""

from __future__ import annotations

import base64
import json
import struct
import time

import httpx
import openai
import pytest

KEY = {"Authorization": "Bearer sk-test-client"}
CHAT = "/v1/chat/completions"


@pytest.fixture
def client(fake, fake_requests):
    with httpx.Client(base_url=fake.base_url, timeout=10) as c:
        yield c


def chat_body(text="hello big world", **extra):
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


def sse_events(text: str) -> list:
    """Parse an SSE body into a list of JSON objects and the final "[DONE]" string."""
    assert text.endswith("\n\n"), repr(text[-20:])
    events = []
    for block in text.split("\n\n")[:-1]:
        assert block.startswith("data: "), block
        data = block[len("data: "):]
        events.append(data if data == "[DONE]" else json.loads(data))
    return events


def assert_openai_error(resp, status, message_part=None, code=None, param=None):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    if message_part is not None:
        assert message_part in err["message"]
    assert err["code"] == code
    assert err["param"] == param
    return err


def test_health(client):
    r = client.get("/__fake/health")
    assert r.status_code == 200 and r.text == "ok"


def test_chat_completion_shape_and_usage(client):
    body = {"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello big world"},
    ]}
    r = client.post(CHAT, json=body, headers=KEY)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    j = r.json()
    assert j["id"].startswith("chatcmpl-fake-")
    assert j["object"] == "chat.completion"
    assert isinstance(j["created"], int)
    assert j["model"] == "gpt-4o-mini"
    assert j["system_fingerprint"]
    assert j["choices"] == [{
        "index": 0,
        "message": {"role": "assistant", "content": "echo: hello big world", "refusal": None,
                    "annotations": []},
        "logprobs": None,
        "finish_reason": "stop",
    }]
    # prompt: 2 + 3 words + 2*2 messages = 9; completion: "echo: hello big world" = 4
    assert j["usage"] == {
        "prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }


def test_any_prefix_and_content_parts(client):
    body = {"model": "m", "messages": [
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": None},
        {"role": "user", "content": [{"type": "text", "text": "part one"},
                                     {"type": "image_url", "image_url": {"url": "x"}},
                                     {"type": "text", "text": "two"}]},
    ]}
    r = client.post("/openai/v1/chat/completions", json=body, headers=KEY)
    assert r.status_code == 200
    j = r.json()
    assert j["choices"][0]["message"]["content"] == "echo: part one two"
    assert j["usage"]["prompt_tokens"] == 2 + 0 + 3 + 2 * 3
    assert j["usage"]["completion_tokens"] == 4


def test_fake_words(client):
    r = client.post(CHAT, json=chat_body(), headers={**KEY, "x-fake-words": "5"})
    j = r.json()
    assert j["choices"][0]["message"]["content"] == "w1 w2 w3 w4 w5"
    assert j["usage"]["completion_tokens"] == 5


def test_stream_without_usage(client):
    r = client.post(CHAT, json=chat_body(stream=True), headers=KEY)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers.get("transfer-encoding") == "chunked"
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert all("usage" not in c for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": "",
                                                          "refusal": None},
                                     "logprobs": None, "finish_reason": None}]
    words = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
    assert words == ["echo: ", "hello ", "big ", "world"]
    assert chunks[-1]["choices"] == [{"index": 0, "delta": {}, "logprobs": None,
                                      "finish_reason": "stop"}]


def test_stream_with_usage(client):
    body = chat_body(stream=True, stream_options={"include_usage": True})
    r = client.post(CHAT, json=body, headers=KEY)
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    last = chunks[-1]
    assert last["choices"] == []
    assert last["usage"]["prompt_tokens"] == 3 + 2
    assert last["usage"]["completion_tokens"] == 4
    assert last["usage"]["total_tokens"] == 9
    assert last["usage"]["completion_tokens_details"]["reasoning_tokens"] == 0


def test_stream_matches_non_stream_content(client):
    text = "spaces   and\ttabs kept"
    plain = client.post(CHAT, json=chat_body(text), headers=KEY).json()
    events = sse_events(client.post(CHAT, json=chat_body(text, stream=True), headers=KEY).text)
    streamed = "".join(c["choices"][0]["delta"].get("content", "")
                       for c in events[:-1] if c["choices"])
    assert streamed == plain["choices"][0]["message"]["content"]


def test_stream_chunk_delay(client):
    headers = {**KEY, "x-fake-chunk-delay-ms": "60", "x-fake-words": "3"}
    arrivals = []
    start = time.monotonic()
    with client.stream("POST", CHAT, json=chat_body(stream=True), headers=headers) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic() - start)
    # role chunk, 3 words, stop chunk, [DONE]: 6 events, 5 delays of 60 ms
    assert len(arrivals) == 6
    assert arrivals[-1] - arrivals[0] >= 0.25
    assert arrivals[1] - arrivals[0] >= 0.04  # delivered one by one, not at the end


@pytest.mark.parametrize("content,message_part", [
    (b"{not json", "We could not parse the JSON body"),
    (b"[1, 2]", "expected an object"),
])
def test_body_must_be_json_object(client, content, message_part):
    r = client.post(CHAT, content=content, headers={**KEY, "content-type": "application/json"})
    err = assert_openai_error(r, 400, message_part)
    assert err["type"] == "invalid_request_error"


@pytest.mark.parametrize("body,message_part,param,code", [
    ({"messages": [{"role": "user", "content": "x"}]}, "you must provide a model parameter",
     None, None),
    ({"model": 3, "messages": [{"role": "user", "content": "x"}]}, "Invalid type for 'model'",
     "model", "invalid_type"),
    ({"model": "m"}, "Missing required parameter: 'messages'.", "messages",
     "missing_required_parameter"),
    ({"model": "m", "messages": []}, "empty array", "messages", "empty_array"),
    ({"model": "m", "messages": ["hi"]}, "Invalid type for 'messages[0]'", "messages[0]",
     "invalid_type"),
    ({"model": "m", "messages": [{"role": "robot", "content": "x"}]}, "Invalid value: 'robot'",
     "messages[0].role", "invalid_value"),
    ({"model": "m", "messages": [{"content": "x"}]}, "messages[0].role", "messages[0].role",
     "missing_required_parameter"),
])
def test_validation_errors(client, body, message_part, param, code):
    r = client.post(CHAT, json=body, headers=KEY)
    assert_openai_error(r, 400, message_part, code=code, param=param)


@pytest.mark.parametrize("stream", [None, False])
def test_stream_options_requires_stream(client, stream):
    body = chat_body(stream_options={"include_usage": True})
    if stream is not None:
        body["stream"] = stream
    r = client.post(CHAT, json=body, headers=KEY)
    err = assert_openai_error(r, 400, param="stream_options")
    assert err["message"] == ("The 'stream_options' parameter is only allowed when 'stream' "
                              "is enabled.")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer"},
                                     {"Authorization": "Basic abc"}])
def test_requires_bearer_key(client, headers):
    r = client.post(CHAT, json=chat_body(), headers=headers)
    assert_openai_error(r, 401, code="invalid_api_key")


def test_fake_status(client):
    r = client.post(CHAT, json=chat_body(stream=True), headers={**KEY, "x-fake-status": "503"})
    err = assert_openai_error(r, 503)
    assert err["type"] == "server_error"
    r = client.post(CHAT, json=chat_body(), headers={**KEY, "x-fake-status": "429"})
    assert_openai_error(r, 429, code="rate_limit_exceeded")


def test_unknown_path(client):
    r = client.post("/v1/nope", json={}, headers=KEY)
    assert_openai_error(r, 404, "Invalid URL (POST /v1/nope)")


def test_recorded_requests(client, fake_requests):
    assert fake_requests() == []
    client.post(CHAT + "?api-version=1", json=chat_body(), headers={**KEY, "X-Custom": "A"})
    client.post(CHAT, content=b"not json", headers=KEY)
    client.get("/__fake/health")  # control requests are not recorded
    reqs = fake_requests()
    assert len(reqs) == 2
    first = reqs[0]
    assert first["method"] == "POST"
    assert first["path"] == CHAT
    assert first["query"] == "api-version=1"
    assert first["headers"]["authorization"] == "Bearer sk-test-client"
    assert first["headers"]["x-custom"] == "A"
    assert all(name == name.lower() for name in first["headers"])
    assert first["body"] == chat_body()
    assert reqs[1]["body"] == "not json"
    assert fake_requests.last() == reqs[1]
    r = client.delete("/__fake/requests")
    assert r.status_code == 200
    assert fake_requests() == []


def test_chunked_request_body(client, fake_requests):
    payload = json.dumps(chat_body("from chunks")).encode()

    def gen():
        for i in range(0, len(payload), 7):
            yield payload[i:i + 7]

    r = client.post(CHAT, content=gen(), headers={**KEY, "content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "echo: from chunks"
    rec = fake_requests.last()
    assert rec["headers"]["transfer-encoding"] == "chunked"
    assert rec["body"] == chat_body("from chunks")


def test_embeddings(client):
    r = client.post("/v1/embeddings", json={"model": "text-embedding-3-small",
                                            "input": ["one two", "three"]}, headers=KEY)
    assert r.status_code == 200
    j = r.json()
    assert j["object"] == "list" and j["model"] == "text-embedding-3-small"
    assert [d["index"] for d in j["data"]] == [0, 1]
    assert all(d["object"] == "embedding" and len(d["embedding"]) == 8 for d in j["data"])
    assert j["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    b64 = client.post("/v1/embeddings", json={"model": "e", "input": "one two",
                                              "encoding_format": "base64"}, headers=KEY).json()
    raw = base64.b64decode(b64["data"][0]["embedding"])
    floats = list(struct.unpack("<8f", raw))
    assert floats == pytest.approx(j["data"][0]["embedding"], abs=1e-6)
    r = client.post("/v1/embeddings", json={"model": "e"}, headers=KEY)
    assert_openai_error(r, 400, param="input", code="missing_required_parameter")


def test_official_openai_sdk(fake, fake_requests):
    client = openai.OpenAI(base_url=fake.base_url + "/v1", api_key="sk-sdk", max_retries=0)
    resp = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi there"}])
    assert resp.choices[0].message.content == "echo: hi there"
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi there"}],
        stream=True, stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "echo: hi there"
    assert usage.prompt_tokens == 2 + 2 and usage.completion_tokens == 3
    emb = client.embeddings.create(model="text-embedding-3-small", input="a b c")
    assert len(emb.data[0].embedding) == 8 and emb.usage.prompt_tokens == 3
    assert fake_requests()[0]["headers"]["authorization"] == "Bearer sk-sdk"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="m", messages=[])


TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


def test_tool_call_json_and_stream(fake):
    sdk = openai.OpenAI(base_url=f"{fake.base_url}/v1", api_key="sk-x", max_retries=0)
    headers = {"x-fake-tool-call": "lookup"}
    messages = [{"role": "user", "content": "find cats"}]
    reply = sdk.chat.completions.create(model="m", messages=messages, tools=TOOLS, extra_headers=headers)
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls"
    assert (call.function.name, json.loads(call.function.arguments)) == ("lookup", {"query": "find cats"})
    chunks = list(sdk.chat.completions.create(model="m", messages=messages, tools=TOOLS, stream=True,
                                              stream_options={"include_usage": True}, extra_headers=headers))
    args = "".join(c.choices[0].delta.tool_calls[0].function.arguments or ""
                   for c in chunks if c.choices and c.choices[0].delta.tool_calls)
    assert json.loads(args) == {"query": "find cats"}
    assert chunks[-1].usage.completion_tokens == len(call.function.arguments.split())
    with pytest.raises(openai.BadRequestError):
        sdk.chat.completions.create(model="m", messages=messages, extra_headers=headers)


def test_azure_deployment_paths(fake):
    url = f"{fake.base_url}/openai/deployments/my-dep/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}]}
    assert httpx.post(url, params={"api-version": "2024-10-21"}, json=body).status_code == 401
    assert httpx.post(url, json=body, headers={"api-key": "k"}).status_code == 404
    r = httpx.post(url, params={"api-version": "2024-10-21"}, json=body, headers={"api-key": "k"})
    assert r.status_code == 200
    assert r.json()["model"] == "my-dep"
