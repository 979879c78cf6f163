"""Admission holds whatever the protocol: the same admission, budget and guard checks over
HTTP/1.1 (plain and chunked with trailers) and HTTP/2 (one frame, many small frames, a body
that ends with a trailers frame). No request reaches the provider unless the module admitted
its complete body. Also: bodiless POSTs, wrong model types, query strings and client-set
`x-envoy-original-path`, and the module's own 413 in the client's dialect."""

from __future__ import annotations

import hashlib
import json
import socket

import httpx
import pytest
from fault_upstream import dechunk
from h2client import h2_request

KEY = "sk-proto"
PROVIDERS = {
    "fake": {"kind": "openai", "cluster": "fake_openai", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
    "claude": {"kind": "anthropic", "cluster": "fake_openai", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
}
CONFIG = {
    "providers": PROVIDERS,
    "models": {"pr-gpt": {"provider": "fake", "model": "gpt-4o-mini"},
               "pr-claude": {"provider": "claude", "model": "claude-sonnet-4-5"}},
    "consumers": {"proto": {"api_keys": [hashlib.sha256(KEY.encode()).hexdigest()], "plan": "p"}},
    # Generous per minute, so the matrix never runs out; the small limit is per request size.
    "plans": {"p": {"limits": [{"name": "tpm", "window": "minute", "tokens": 4000}]}},
    "quota": {"clamp_max_tokens": True, "estimator": "upper-bound", "min_output_tokens": 1,
              "default_max_output_tokens": 64},
    "limits": {"max_request_body_bytes": 65536},
    "prompts": {"guards": {"deny": [{"name": "no-secrets", "regex": "(?i)password\\s*:"}],
                           "mask": [{"name": "email", "builtin": "email"}]}},
}
AUTH = {"authorization": f"Bearer {KEY}", "content-type": "application/json"}


@pytest.fixture
def gw(shared_gateway):
    return shared_gateway(CONFIG)


# ----------------------------------------------------------------------------- transports


def h1_plain(port, path, headers, body):
    r = httpx.post(f"http://127.0.0.1:{port}{path}", headers=headers, content=body, timeout=15)
    return r.status_code, r.content


def h1_chunked_trailers(port, path, headers, body):
    """HTTP/1.1 chunked body in 5-byte chunks, then a trailer section."""
    lines = [f"POST {path} HTTP/1.1", f"host: 127.0.0.1:{port}", "transfer-encoding: chunked",
             "te: trailers", "connection: close"] + [f"{k}: {v}" for k, v in headers.items()]
    out = ("\r\n".join(lines) + "\r\n\r\n").encode()
    for i in range(0, len(body), 5):
        piece = body[i:i + 5]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\nx-trailer: 1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(out)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        rest = dechunk(rest)
    return status, rest


def h2_one_frame(port, path, headers, body):
    r = h2_request(port, "POST", path, headers, body)
    return r.status, r.body


def h2_split(port, path, headers, body):
    r = h2_request(port, "POST", path, headers, body, chunk=7)
    return r.status, r.body


def h2_trailers(port, path, headers, body):
    r = h2_request(port, "POST", path, headers, body, chunk=7, trailers={"x-trailer": "1"})
    return r.status, r.body


def h2_one_frame_trailers(port, path, headers, body):
    r = h2_request(port, "POST", path, headers, body, trailers={"x-trailer": "1"})
    return r.status, r.body


TRANSPORTS = [h1_plain, h1_chunked_trailers, h2_one_frame, h2_split, h2_trailers, h2_one_frame_trailers]


def chat(content, model="pr-gpt", **extra) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": content}], **extra}).encode()


# ----------------------------------------------------------------------------- the matrix


@pytest.mark.parametrize("send", TRANSPORTS, ids=lambda f: f.__name__)
def test_admitted_request_is_patched_masked_and_clamped(gw, fake_requests, send):
    status, body = send(gw.port, "/v1/chat/completions", AUTH,
                        chat("mail me at eve@example.com", max_tokens=100000))
    assert status == 200, body
    seen = fake_requests.last()["body"]
    assert seen["model"] == "gpt-4o-mini", "the model is patched on every transport"
    assert "eve@example.com" not in json.dumps(seen), "the mask ran on every transport"
    assert seen.get("max_tokens", seen.get("max_completion_tokens")) < 4000, "the clamp ran"


@pytest.mark.parametrize("send", TRANSPORTS, ids=lambda f: f.__name__)
def test_guard_refuses_on_every_transport(gw, fake_requests, send):
    status, body = send(gw.port, "/v1/chat/completions", AUTH, chat("password: hunter2"))
    assert status == 400, body
    assert json.loads(body)["error"]["code"] == "prompt_blocked"
    assert b"hunter2" not in body
    assert fake_requests() == [], "a blocked prompt never reaches the provider"


@pytest.mark.parametrize("send", TRANSPORTS, ids=lambda f: f.__name__)
def test_budget_refuses_on_every_transport(gw, fake_requests, send):
    # 5,000 prompt bytes: the upper-bound estimate alone exceeds the 4,000-token limit.
    status, body = send(gw.port, "/v1/chat/completions", AUTH, chat("x " * 2500))
    assert status == 429, body
    assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"
    assert fake_requests() == []


@pytest.mark.parametrize("send", TRANSPORTS, ids=lambda f: f.__name__)
def test_anthropic_dialect_on_every_transport(gw, fake_requests, send):
    headers = {"x-api-key": KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}
    body = json.dumps({"model": "pr-claude", "max_tokens": 50,
                       "messages": [{"role": "user", "content": "password: x"}]}).encode()
    status, reply = send(gw.port, "/v1/messages", headers, body)
    assert status == 400, reply
    assert json.loads(reply)["type"] == "error"
    assert fake_requests() == []


# ----------------------------------------------------------------------------- single findings


def test_post_without_body_is_refused_before_anyone_is_contacted(gw, fake_requests):
    for headers in ({**AUTH, "x-llm-model": "pr-gpt"}, {"x-api-key": KEY, "x-llm-model": "pr-claude"}):
        r = httpx.post(f"{gw.base_url}/v1/chat/completions", headers=headers)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "missing_body"
        r2 = h2_request(gw.port, "POST", "/v1/chat/completions", headers)
        assert r2.status == 400 and r2.json()["error"]["code"] == "missing_body"
    assert fake_requests() == []


@pytest.mark.parametrize("model", [123, None, True, {"a": 1}, ["pr-gpt"]])
def test_model_of_the_wrong_type_is_a_400(gw, fake_requests, model):
    r = httpx.post(f"{gw.base_url}/v1/chat/completions", headers=AUTH,
                   content=json.dumps({"model": model, "messages": [{"role": "user", "content": "x"}]}))
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "model" and "string" in error["message"]
    assert fake_requests() == []


def test_unknown_model_matches_openai_field_for_field(gw, fake_requests):
    r = httpx.post(f"{gw.base_url}/v1/chat/completions", headers=AUTH, content=chat("x", model="nope"))
    assert r.status_code == 404
    assert r.json() == {"error": {"message": "The model `nope` does not exist or you do not have access to it.",
                                  "type": "invalid_request_error", "param": None, "code": "model_not_found"}}
    assert fake_requests() == []


def test_query_string_never_reaches_the_provider_or_the_log(gw, fake_requests):
    r = httpx.post(f"{gw.base_url}/v1/chat/completions?key=sk-secret-in-query&x=1", headers=AUTH, content=chat("q"))
    assert r.status_code == 200, r.text
    seen = fake_requests.last()
    assert seen["path"] == "/v1/chat/completions" and not seen["query"], seen
    line = gw.wait_log_line(lambda l: "pr-gpt" in l and "/v1/chat/completions" in l)
    assert line and "sk-secret" not in line, line
    assert all("sk-secret" not in json.dumps(r) for r in fake_requests())


def test_client_cannot_set_the_logged_path(gw, fake_requests):
    forged = {**AUTH, "x-envoy-original-path": "/forged/path"}
    r = httpx.post(f"{gw.base_url}/v1/chat/completions", headers=forged, content=chat("f"))
    assert r.status_code == 200
    r = httpx.post(f"{gw.base_url}/v1/nothing-here", headers=forged, content=chat("f"))
    assert r.status_code == 404
    lines = gw.access_log_lines(min_lines=2)
    assert not any("/forged/path" in line for line in lines), lines[-2:]
    assert "x-envoy-original-path" not in fake_requests.last()["headers"]


@pytest.mark.parametrize("send", [h1_plain, h2_split, h2_trailers], ids=lambda f: f.__name__)
def test_oversized_body_gets_the_modules_413(gw, fake_requests, send):
    body = chat("y" * 70000)
    status, reply = send(gw.port, "/v1/chat/completions", AUTH, body)
    assert status == 413, reply[:200]
    error = json.loads(reply)["error"]
    assert error["code"] == "request_too_large" and "65536" in error["message"]
    assert fake_requests() == []


DEFAULT_LIMITS = {k: v for k, v in CONFIG.items() if k not in ("limits", "consumers", "plans", "quota")}


@pytest.mark.parametrize("dialect", ["openai", "anthropic"])
def test_every_413_is_json_in_the_clients_dialect(shared_gateway, fake_requests, dialect):
    """At the default limits (module 8 MiB, Envoy's buffer 9 MiB): between the two the
    module's own 413 names its limit; past Envoy's buffer, Envoy's 413 (sent before the module
    runs) gets the client's shape from local_reply_config."""
    gw = shared_gateway(DEFAULT_LIMITS)
    path, headers, model = {"openai": ("/v1/chat/completions", {"content-type": "application/json"}, "pr-gpt"),
                            "anthropic": ("/v1/messages", {"content-type": "application/json",
                                                           "anthropic-version": "2023-06-01"}, "pr-claude")}[dialect]
    for size, who in ((8 * 1024 * 1024 + 1000, "module"), (10 * 1024 * 1024, "envoy")):
        body = json.dumps({"model": model, "max_tokens": 5,
                           "messages": [{"role": "user", "content": "z" * size}]}).encode()
        r = httpx.post(f"http://127.0.0.1:{gw.port}{path}", headers=headers, content=body, timeout=30)
        assert r.status_code == 413, (who, r.text[:200])
        assert r.headers["content-type"].startswith("application/json"), (who, r.text[:200])
        reply = r.json()
        if dialect == "anthropic":
            assert reply["type"] == "error" and reply["error"]["type"] == "request_too_large", reply
        else:
            assert reply["error"]["code"] == "request_too_large", reply
            if who == "module":
                assert "8388608" in reply["error"]["message"]
    assert fake_requests() == []


@pytest.mark.parametrize("model", ["t-openai", "t-azure", "t-claude", "t-gemini", "t-bedrock", "t-mistral"])
def test_translation_and_signing_after_trailers(shared_gateway, fake_requests, model):
    """A body ending with trailers is translated for every provider, and Bedrock's SigV4
    signature (computed on the translated body, applied by the second instance) verifies."""
    from test_translation import CONFIG as TRANSLATION, UPSTREAM_PATHS
    gw = shared_gateway(TRANSLATION)
    status, reply = h2_trailers(gw.port, "/v1/chat/completions", {"content-type": "application/json"},
                                chat("one two three", model=model, max_tokens=20))
    assert status == 200, reply
    assert json.loads(reply)["choices"][0]["message"]["content"] == "echo: one two three"
    assert UPSTREAM_PATHS[model] in fake_requests.last()["path"]


def test_the_provider_is_never_asked_to_compress(gw, fake_requests):
    """A compressed answer could not be read for usage: the provider is asked for identity."""
    r = httpx.post(f"{gw.base_url}/v1/chat/completions", content=chat("z"),
                   headers={**AUTH, "accept-encoding": "gzip, deflate, br"})
    assert r.status_code == 200, r.text
    assert fake_requests.last()["headers"]["accept-encoding"] == "identity"
