"""The fake provider's Gemini dialect on its own (no Envoy, no wasm): wire shapes, usage
arithmetic, validation, test controls."""

from __future__ import annotations

import json

import httpx
import pytest

KEY = {"x-goog-api-key": "test-gemini-key"}
GEN = "/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"


@pytest.fixture
def client(fake, fake_requests):
    with httpx.Client(base_url=fake.base_url, timeout=10) as c:
        yield c


def body(text="hello big world", **extra):
    return {"contents": [{"role": "user", "parts": [{"text": text}]}], **extra}


def sse_chunks(resp) -> list[dict]:
    text = resp.text
    assert text.endswith("\r\n\r\n"), repr(text[-20:])
    out = []
    for block in text.split("\r\n\r\n")[:-1]:
        assert block.startswith("data: "), block
        out.append(json.loads(block[len("data: "):]))
    return out


def assert_google_error(resp, code, status, message_part=None):
    assert resp.status_code == code, resp.text
    err = resp.json()["error"]
    assert set(err) == {"code", "message", "status"}
    assert err["code"] == code and err["status"] == status
    if message_part is not None:
        assert message_part in err["message"], err["message"]


def test_generate_content_shape_and_usage(client):
    r = client.post(GEN, headers=KEY, json={
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "hello there"}]},
            {"role": "user", "parts": [{"text": "hello big world"}]},
        ],
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 50},
    })
    assert r.status_code == 200, r.text
    data = r.json()
    cand = data["candidates"][0]
    assert cand["content"] == {"parts": [{"text": "echo: hello big world"}], "role": "model"}
    assert cand["finishReason"] == "STOP"
    assert data["modelVersion"] == "gemini-2.5-flash"
    assert data["responseId"].startswith("gemfake")
    # words: 1 + 2 + 3 contents + 2 system = 8; + 2 * 3 contents + 2 for system = 16
    usage = data["usageMetadata"]
    assert usage["promptTokenCount"] == 16
    assert usage["candidatesTokenCount"] == 4
    assert usage["totalTokenCount"] == 20


def test_stream_sse_chunks_concatenate_to_the_reply(client):
    r = client.post(STREAM + "?alt=sse", headers=KEY, json=body())
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    chunks = sse_chunks(r)
    text = "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks)
    assert text == "echo: hello big world"
    assert [c["candidates"][0].get("finishReason") for c in chunks] == [None] * (len(chunks) - 1) + ["STOP"]
    counts = [c["usageMetadata"]["candidatesTokenCount"] for c in chunks]
    assert counts == sorted(counts) and counts[-1] == 4  # cumulative


def test_stream_without_alt_sse_is_a_json_array(client):
    r = client.post(STREAM, headers=KEY, json=body())
    assert r.status_code == 200
    assert isinstance(r.json(), list) and r.json()[-1]["candidates"][0]["finishReason"] == "STOP"


def test_fake_words_and_thinking(client):
    r = client.post(GEN, headers={**KEY, "x-fake-words": "3"}, json=body(
        generationConfig={"thinkingConfig": {"includeThoughts": True, "thinkingBudget": 1024}}))
    data = r.json()
    parts = data["candidates"][0]["content"]["parts"]
    assert parts == [{"text": "thinking about: hello big world", "thought": True}, {"text": "w1 w2 w3"}]
    usage = data["usageMetadata"]
    assert usage["thoughtsTokenCount"] == 5 and usage["candidatesTokenCount"] == 3
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + 8


def test_tool_call_control_and_tool_loop(client):
    tools = [{"functionDeclarations": [{"name": "lookup", "description": "d",
                                        "parametersJsonSchema": {"type": "object"}}]}]
    r = client.post(GEN, headers={**KEY, "x-fake-tool-call": "lookup"}, json=body(tools=tools))
    part = r.json()["candidates"][0]["content"]["parts"][0]
    assert part["functionCall"] == {"name": "lookup", "args": {"query": "hello big world"}}
    assert part["thoughtSignature"]
    # Send the call back with its result: accepted, and the echo uses the last user *text*.
    r = client.post(GEN, headers=KEY, json={"tools": tools, "contents": [
        {"role": "user", "parts": [{"text": "hello big world"}]},
        {"role": "model", "parts": [part]},
        {"role": "user", "parts": [{"functionResponse": {"name": "lookup", "response": {"output": "x"}}}]},
    ]})
    assert r.status_code == 200, r.text
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == "echo: hello big world"


def test_stream_tool_call_is_one_chunk(client):
    r = client.post(STREAM + "?alt=sse", headers={**KEY, "x-fake-tool-call": "lookup"}, json=body())
    chunks = sse_chunks(r)
    assert len(chunks) == 1
    assert chunks[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "lookup"


def test_authentication(client):
    r = client.post(GEN, json=body())
    assert_google_error(r, 403, "PERMISSION_DENIED", "unregistered callers")
    assert client.post(GEN + "?key=k", json=body()).status_code == 200


def test_fake_status(client):
    assert_google_error(client.post(GEN, headers={**KEY, "x-fake-status": "429"}, json=body()),
                        429, "RESOURCE_EXHAUSTED")
    assert_google_error(client.post(GEN, headers={**KEY, "x-fake-status": "503"}, json=body()),
                        503, "UNAVAILABLE")


@pytest.mark.parametrize("payload, message", [
    ({}, "contents is not specified"),
    ({"contents": []}, "contents is not specified"),
    ({"contents": [{"role": "assistant", "parts": [{"text": "x"}]}]}, "valid role"),
    ({"contents": [{"role": "user", "parts": []}]}, "must not be empty"),
    ({"contents": [{"role": "user", "parts": [{"text": "x", "image": 1}]}]}, 'Unknown name "image"'),
    ({"contents": [{"role": "user", "parts": [{"text": "x", "inlineData": {"mimeType": "a", "data": "b"}}]}]},
     "oneof"),
    ({"contents": [{"role": "user", "parts": [{"functionResponse": {"response": {}}}]}]}, "Name cannot be empty"),
    ({"contents": [{"role": "user", "parts": [{"functionCall": {"name": "f"}}]}]}, "function call turn"),
    ({"contents": [
        {"role": "user", "parts": [{"text": "x"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}},
                                    {"functionCall": {"name": "f", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": {}}}]},
    ]}, "number of function response parts"),
    ({**body(), "messages": []}, 'Unknown name "messages"'),
    ({**body(), "generationConfig": {"max_tokens": 5}}, 'Unknown name "max_tokens"'),
    ({**body(), "generationConfig": {"responseJsonSchema": {"type": "object"}}}, "application/json"),
    ({**body(), "generationConfig": {"stopSequences": list("abcdef")}}, "at most 5"),
    ({**body(), "toolConfig": {"functionCallingConfig": {"mode": "AUTO", "allowedFunctionNames": ["f"]}}},
     "only be set when"),
    ({**body(), "tools": [{"functionDeclarations": [{"name": "bad name"}]}]}, "Invalid function name"),
])
def test_validation(client, payload, message):
    assert_google_error(client.post(GEN, headers=KEY, json=payload), 400, "INVALID_ARGUMENT", message)


def test_invalid_json(client):
    r = client.post(GEN, headers={**KEY, "content-type": "application/json"}, content=b"{nope")
    assert_google_error(r, 400, "INVALID_ARGUMENT", "Invalid JSON payload")


def test_requests_are_recorded(client, fake_requests):
    client.post(STREAM + "?alt=sse", headers=KEY, json=body())
    last = fake_requests()[-1]
    assert last["path"] == STREAM and last["query"] == "alt=sse"
    assert last["headers"]["x-goog-api-key"] == "test-gemini-key"


# ----------------------------------------------------------------------------- embeddings

EMBED = "/v1beta/models/gemini-embedding-001:batchEmbedContents"


def embed_request(text, **extra):
    return {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": text}]}, **extra}


def test_batch_embed_contents_shape(client):
    r = client.post(EMBED, headers=KEY, json={"requests": [embed_request("a b"), embed_request("c", outputDimensionality=8)]})
    assert r.status_code == 200, r.text
    data = r.json()
    assert set(data) == {"embeddings"}, "batchEmbedContents reports no token counts"
    assert [len(e["values"]) for e in data["embeddings"]] == [3072, 8]
    again = client.post(EMBED, headers=KEY, json={"requests": [embed_request("c", outputDimensionality=8)]})
    assert again.json()["embeddings"][0]["values"] == data["embeddings"][1]["values"]
    one = client.post("/v1beta/models/gemini-embedding-001:embedContent", headers=KEY,
                      json={"content": {"parts": [{"text": "c"}]}, "outputDimensionality": 8})
    assert one.json() == {"embedding": {"values": data["embeddings"][1]["values"]}}


@pytest.mark.parametrize("payload, message", [
    ({"requests": []}, "must not be empty"),
    ({"requests": [embed_request("x")], "model": "m"}, 'Unknown name "model"'),
    ({"requests": [{"model": "models/other", "content": {"parts": [{"text": "x"}]}}]}, "does not match"),
    ({"requests": [embed_request("")]}, "must not be empty"),
    ({"requests": [embed_request("x", dimensions=8)]}, 'Unknown name "dimensions"'),
    ({"requests": [embed_request("x", outputDimensionality=0)]}, "between 1 and 3072"),
    ({"requests": [embed_request("x")] * 101}, "at most 100"),
])
def test_batch_embed_contents_validation(client, payload, message):
    assert_google_error(client.post(EMBED, headers=KEY, json=payload), 400, "INVALID_ARGUMENT", message)
    assert_google_error(client.post(EMBED, json={"requests": [embed_request("x")]}), 403, "PERMISSION_DENIED")
