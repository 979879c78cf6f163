"""The fake Bedrock Runtime (integration/fake_dialects/bedrock.py) on its own: SigV4 and
bearer auth, validation, Converse JSON, ConverseStream event streams, test controls."""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import pathlib
import struct
import zlib
from urllib.parse import quote, unquote

import httpx
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL_ARN = ("arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
             "us.anthropic.claude-3-5-sonnet-20240620-v1:0")
BEARER = {"Authorization": "Bearer bedrock-api-key-test"}


@pytest.fixture
def client(fake, fake_requests):
    with httpx.Client(base_url=fake.base_url, timeout=10) as c:
        yield c


def path_for(model: str, stream: bool = False) -> str:
    return f"/model/{quote(model, safe='-._~')}/{'converse-stream' if stream else 'converse'}"


def body_of(text="hello big world", **extra) -> dict:
    return {"messages": [{"role": "user", "content": [{"text": text}]}], **extra}


# ----------------------------------------------------------------------------- SigV4 (test side)


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def sigv4_headers(path: str, body: bytes, host: str, secret: str = "fake-secret",
                  payload_hash: str | None = None, amz_date: str | None = None) -> dict:
    """A minimal SigV4 signer written from the AWS documentation (not the fake's code)."""
    amz_date = amz_date or datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    payload_hash = payload_hash or hashlib.sha256(body).hexdigest()
    canonical_uri = quote(path, safe="/-._~")  # the wire path encoded again (non-S3 rule)
    headers = {"content-type": "application/json", "host": host, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    creq = "\n".join(["POST", canonical_uri, "",
                      "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)), signed, payload_hash])
    scope = f"{amz_date[:8]}/us-east-1/bedrock/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    key = _hmac(("AWS4" + secret).encode(), amz_date[:8])
    for part in ("us-east-1", "bedrock", "aws4_request"):
        key = _hmac(key, part)
    sig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Amz-Date": amz_date,
        "X-Amz-Content-Sha256": payload_hash,
        "Authorization": f"AWS4-HMAC-SHA256 Credential=AKIDTEST/{scope}, SignedHeaders={signed}, Signature={sig}",
    }


# ----------------------------------------------------------------------------- event stream (test side)


def decode_event_stream(data: bytes) -> list[tuple[dict, bytes]]:
    out = []
    while data:
        total, hlen, pcrc = struct.unpack(">III", data[:12])
        assert zlib.crc32(data[:8]) == pcrc
        frame, data = data[:total], data[total:]
        assert zlib.crc32(frame[:-4]) == struct.unpack(">I", frame[-4:])[0]
        headers, raw, i = {}, frame[12:12 + hlen], 0
        while i < len(raw):
            n = raw[i]
            name = raw[i + 1:i + 1 + n].decode()
            i += 1 + n
            assert raw[i] == 7, "the fake only sends string headers"
            (vlen,) = struct.unpack(">H", raw[i + 1:i + 3])
            headers[name] = raw[i + 3:i + 3 + vlen].decode()
            i += 3 + vlen
        out.append((headers, frame[12 + hlen:-4]))
    return out


def events(resp) -> list[tuple[str, dict]]:
    assert resp.headers["content-type"] == "application/vnd.amazon.eventstream"
    return [(h.get(":event-type") or h[":exception-type"], json.loads(p))
            for h, p in decode_event_stream(resp.content)]


# ----------------------------------------------------------------------------- tests


def test_converse_with_bearer_key(client, fake_requests):
    r = client.post(path_for(MODEL_ARN), json=body_of(system=[{"text": "be brief"}]), headers=BEARER)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["output"] == {"message": {"role": "assistant",
                                       "content": [{"text": "echo: hello big world"}]}}
    assert j["stopReason"] == "end_turn"
    # input: 3 words + 2 system words + 2*1 message = 7; output: 4 words
    assert j["usage"] == {"inputTokens": 7, "outputTokens": 4, "totalTokens": 11}
    assert j["metrics"]["latencyMs"] >= 0
    assert r.headers["x-fake-model-id"] == MODEL_ARN
    assert fake_requests.last()["path"] == path_for(MODEL_ARN)


def test_converse_with_sigv4(client):
    raw = json.dumps(body_of()).encode()
    path = path_for(MODEL_ARN)
    host = client.base_url.host + f":{client.base_url.port}"
    r = client.post(path, content=raw, headers=sigv4_headers(path, raw, host))
    assert r.status_code == 200, r.text


def test_sigv4_signed_by_the_rust_module(client):
    """tests/sigv4.rs signs a request with the fake's default secret; the fake accepts it."""
    rec = json.loads((ROOT / "tests/fixtures/bedrock/golden/sigv4_fake_request.json").read_text())
    headers = dict(rec["headers"])
    headers["Host"] = rec["signed_host"]
    r = client.post(rec["path"], content=rec["body"].encode(), headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["output"]["message"]["content"] == [{"text": "echo: signed by rust"}]


def test_sigv4_failures(client):
    raw = json.dumps(body_of()).encode()
    path = path_for("anthropic.claude-3-haiku-20240307-v1:0")
    host = client.base_url.host + f":{client.base_url.port}"
    # Tampered body.
    headers = sigv4_headers(path, raw, host)
    r = client.post(path, content=raw.replace(b"hello", b"HELLO"), headers=headers)
    assert r.status_code == 403
    assert r.headers["x-amzn-errortype"].startswith("InvalidSignatureException")
    assert "does not match" in r.json()["message"]
    # Wrong secret.
    r = client.post(path, content=raw, headers=sigv4_headers(path, raw, host, secret="nope"))
    assert r.status_code == 403
    # UNSIGNED-PAYLOAD is not accepted (non-S3 services hash the body they receive).
    r = client.post(path, content=raw,
                    headers=sigv4_headers(path, raw, host, payload_hash="UNSIGNED-PAYLOAD"))
    assert r.status_code == 403
    # Signing the once-encoded path (the classic bug) fails for ARNs.
    arn_path = path_for(MODEL_ARN)
    bad = sigv4_headers(unquote(arn_path), raw, host)  # canonical URI = the once-encoded path
    r = client.post(arn_path, content=raw, headers=bad)
    assert r.status_code == 403
    # No auth at all.
    r = client.post(path, json=body_of())
    assert r.status_code == 403 and r.json() == {"message": "Missing Authentication Token"}
    # Malformed Authorization.
    r = client.post(path, json=body_of(), headers={"Authorization": "AWS4-HMAC-SHA256 nonsense"})
    assert r.status_code == 403
    assert r.headers["x-amzn-errortype"].startswith("IncompleteSignatureException")


@pytest.mark.parametrize("body,fragment", [
    ({}, "messages field is required"),
    ({"messages": [], "model": "x"}, "Unknown field"),
    ({"messages": [{"role": "assistant", "content": [{"text": "hi"}]}]}, "must start with a user"),
    ({"messages": [{"role": "user", "content": [{"text": "a"}]},
                   {"role": "user", "content": [{"text": "b"}]}]}, "must alternate"),
    ({"messages": [{"role": "user", "content": [{"text": "  "}]}]}, "is blank"),
    ({"messages": [{"role": "user", "content": [{"text": "a", "image": {}}]}]}, "exactly one"),
    ({"messages": [{"role": "user", "content": [
        {"image": {"format": "bmp", "source": {"bytes": "AA=="}}}]}]}, "format"),
    ({"messages": [{"role": "user", "content": [
        {"image": {"format": "png", "source": {"bytes": "not base64!"}}}]}]}, "base64"),
    ({"messages": [{"role": "user", "content": [{"text": "a"}]},
                   {"role": "assistant", "content": [
                       {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
                   {"role": "user", "content": [
                       {"toolResult": {"toolUseId": "t1", "content": [{"text": "r"}]}}]}]},
     "toolConfig field must be defined"),
    ({"messages": [{"role": "user", "content": [
        {"toolResult": {"toolUseId": "nope", "content": [{"text": "r"}]}}]}],
      "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}]}},
     "does not match any toolUse"),
    ({**body_of(), "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {}}}}],
                                  "toolChoice": {"tool": {"name": "g"}}}}, "defined tool"),
    ({**body_of(), "inferenceConfig": {"maxTokens": "10"}}, "maxTokens"),
])
def test_validation(client, body, fragment):
    r = client.post(path_for("anthropic.claude-3-haiku-20240307-v1:0"), json=body, headers=BEARER)
    assert r.status_code == 400, r.text
    assert r.headers["x-amzn-errortype"].startswith("ValidationException")
    assert fragment in r.json()["message"]


def test_full_tool_round_trip_is_valid(client):
    body = {
        "messages": [
            {"role": "user", "content": [{"text": "What is the most popular song on WZPZ?"}]},
            {"role": "assistant", "content": [
                {"reasoningContent": {"reasoningText": {"text": "call it", "signature": "s"}}},
                {"toolUse": {"toolUseId": "tooluse_1", "name": "top_song", "input": {"sign": "WZPZ"}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "tooluse_1", "status": "success",
                                "content": [{"json": {"song": "Elemental Hotel"}}]}},
                {"text": "thanks"}]},
        ],
        "toolConfig": {"tools": [{"toolSpec": {"name": "top_song", "description": "d",
                                               "inputSchema": {"json": {"type": "object"}}}}],
                       "toolChoice": {"auto": {}}},
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.2, "topP": 0.9, "stopSequences": ["END"]},
        "additionalModelRequestFields": {"top_k": 5},
    }
    r = client.post(path_for("anthropic.claude-3-haiku-20240307-v1:0"), json=body, headers=BEARER)
    assert r.status_code == 200, r.text
    assert r.json()["output"]["message"]["content"] == [{"text": "echo: thanks"}]


def test_tool_call_control_and_cache_usage(client):
    r = client.post(path_for("m.x-v1:0"), json=body_of("find jazz"),
                    headers={**BEARER, "x-fake-tool-call": "search",
                             "x-fake-cache-read": "2", "x-fake-cache-write": "1"})
    assert r.status_code == 200, r.text
    j = r.json()
    (block,) = j["output"]["message"]["content"]
    assert block["toolUse"]["name"] == "search"
    assert block["toolUse"]["input"] == {"query": "find jazz"}
    assert block["toolUse"]["toolUseId"].startswith("tooluse_fake_")
    assert j["stopReason"] == "tool_use"
    # all input = 2 words + 2 = 4; cache read 2 + write 1 excluded from inputTokens
    assert j["usage"] == {"inputTokens": 1, "outputTokens": 3, "totalTokens": 7,
                          "cacheReadInputTokens": 2, "cacheWriteInputTokens": 1,
                          "cacheDetails": [{"inputTokens": 1, "ttl": "5m"}]}
    # x-fake-cache-write-1h: that many of the writes have the 1-hour TTL, listed first.
    r = client.post(path_for("m.x-v1:0"), json=body_of("find jazz"),
                    headers={**BEARER, "x-fake-cache-write": "3", "x-fake-cache-write-1h": "2"})
    assert r.json()["usage"]["cacheDetails"] == [{"inputTokens": 2, "ttl": "1h"}, {"inputTokens": 1, "ttl": "5m"}]


def test_stream_text(client):
    r = client.post(path_for(MODEL_ARN, stream=True), json=body_of(), headers=BEARER)
    assert r.status_code == 200, r.text
    ev = events(r)
    names = [n for n, _ in ev]
    assert names[0] == "messageStart" and names[-3:] == ["contentBlockStop", "messageStop", "metadata"]
    text = "".join(p["delta"]["text"] for n, p in ev if n == "contentBlockDelta")
    assert text == "echo: hello big world"
    assert ev[-2][1]["stopReason"] == "end_turn"
    assert ev[-1][1]["usage"] == {"inputTokens": 5, "outputTokens": 4, "totalTokens": 9}
    assert all("p" in p for _, p in ev)


def test_stream_tool_call_and_words(client):
    r = client.post(path_for("m.x-v1:0", stream=True), json=body_of("hi there"),
                    headers={**BEARER, "x-fake-tool-call": "lookup"})
    ev = events(r)
    start = next(p for n, p in ev if n == "contentBlockStart")
    assert start["start"]["toolUse"]["name"] == "lookup"
    args = "".join(p["delta"]["toolUse"]["input"] for n, p in ev if n == "contentBlockDelta")
    assert json.loads(args) == {"query": "hi there"}
    assert ev[-2][1]["stopReason"] == "tool_use"

    r = client.post(path_for("m.x-v1:0", stream=True), json=body_of(),
                    headers={**BEARER, "x-fake-words": "3"})
    text = "".join(p["delta"]["text"] for n, p in events(r) if n == "contentBlockDelta")
    assert text == "w1 w2 w3"


def test_stream_exception_control(client):
    r = client.post(path_for("m.x-v1:0", stream=True), json=body_of(),
                    headers={**BEARER, "x-fake-stream-exception": "throttlingException"})
    ev = events(r)
    assert [n for n, _ in ev] == ["messageStart", "contentBlockDelta", "throttlingException"]
    assert "x-fake-stream-exception" in ev[-1][1]["message"]


@pytest.mark.parametrize("status,error_type", [
    (400, "ValidationException"), (403, "AccessDeniedException"), (429, "ThrottlingException"),
    (500, "InternalServerException"), (503, "ServiceUnavailableException"),
])
def test_status_control(client, status, error_type):
    r = client.post(path_for("m.x-v1:0"), json=body_of(), headers={**BEARER, "x-fake-status": str(status)})
    assert r.status_code == status
    assert r.headers["x-amzn-errortype"].startswith(error_type)
    assert set(r.json()) == {"message"}


def test_other_paths_are_not_bedrock(client):
    # InvokeModel is served for embeddings (below); its streaming form is not.
    r = client.post("/model/x/invoke-with-response-stream", json={}, headers=BEARER)
    assert r.status_code == 404


# ----------------------------------------------------------------------------- InvokeModel embeddings


def invoke_path(model: str) -> str:
    return f"/model/{quote(model, safe='-._~')}/invoke"


def test_invoke_titan_and_cohere_embeddings(client):
    r = client.post(invoke_path("amazon.titan-embed-text-v2:0"), headers=BEARER,
                    json={"inputText": "hello big world", "dimensions": 256})
    assert r.status_code == 200, r.text
    titan = r.json()
    assert len(titan["embedding"]) == 256 and titan["embeddingsByType"]["float"] == titan["embedding"]
    assert titan["inputTextTokenCount"] == 3 and r.headers["x-amzn-bedrock-input-token-count"] == "3"
    r = client.post(invoke_path("cohere.embed-english-v3"), headers=BEARER,
                    json={"texts": ["hello world", "a b c"], "input_type": "search_query"})
    cohere = r.json()
    assert cohere["response_type"] == "embeddings_floats" and [len(v) for v in cohere["embeddings"]] == [1024, 1024]
    assert "meta" not in cohere and r.headers["x-amzn-bedrock-input-token-count"] == "5"
    r = client.post(invoke_path("us.cohere.embed-v4:0"), headers=BEARER,
                    json={"texts": ["x"], "input_type": "search_document", "output_dimension": 256})
    assert r.json()["response_type"] == "embeddings_by_type" and len(r.json()["embeddings"]["float"][0]) == 256


def test_invoke_with_sigv4_is_verified(client):
    body = json.dumps({"inputText": "hi"}).encode()
    path = invoke_path("amazon.titan-embed-text-v2:0")
    good = sigv4_headers(path, body, client.base_url.netloc.decode())
    assert client.post(path, content=body, headers=good).status_code == 200
    bad = sigv4_headers(path, body, client.base_url.netloc.decode(), secret="wrong")
    assert client.post(path, content=body, headers=bad).status_code == 403


@pytest.mark.parametrize("model, body, fragment", [
    ("amazon.titan-embed-text-v2:0", {"inputText": "x", "dimensions": 300}, "dimensions"),
    ("amazon.titan-embed-text-v2:0", {"inputText": ""}, "inputText"),
    ("amazon.titan-embed-text-v1", {"inputText": "x", "dimensions": 256}, "extraneous key [dimensions]"),
    ("cohere.embed-english-v3", {"texts": ["x"]}, "input_type"),
    ("cohere.embed-english-v3", {"texts": ["x"] * 97, "input_type": "search_query"}, "maxItems"),
    ("cohere.embed-english-v3", {"texts": ["x"], "input_type": "search_query", "output_dimension": 256},
     "extraneous key [output_dimension]"),
    ("anthropic.claude-3-haiku-20240307-v1:0", {"inputText": "x"}, "Malformed input request"),
])
def test_invoke_validation(client, model, body, fragment):
    r = client.post(invoke_path(model), headers=BEARER, json=body)
    assert r.status_code == 400, r.text
    assert r.headers["x-amzn-ErrorType"].startswith("ValidationException")
    assert fragment in r.json()["message"], r.json()
