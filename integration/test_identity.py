"""Identity through real Envoy (issue 10, items 8, 22 and 23): the model list needs a
credential and shows only what the caller may use; trusted headers never reach the provider
and cannot override a configured plan; JWT subjects and plan claims cannot take over an
API-key consumer's identity or plan; audiences and issuers are enforced."""

from __future__ import annotations

import base64
import hashlib
import json
import time

import anthropic
import httpx
import openai
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ISSUER = "https://idp.test.invalid"
AUDIENCE = "llm-gateway-test"
# One key per test session: the gateway gets only its public half.
SIGNING_KEY = Ed25519PrivateKey.generate()
PUBLIC_PEM = SIGNING_KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint(sub: str, *, aud: str | None = AUDIENCE, iss: str | None = ISSUER, plan: str | None = None) -> str:
    """An EdDSA JWT signed with the session key."""
    now = int(time.time())
    claims = {"sub": sub, "iat": now, "nbf": now, "exp": now + 600}
    if aud is not None:
        claims["aud"] = aud
    if iss is not None:
        claims["iss"] = iss
    if plan is not None:
        claims["plan"] = plan
    header = {"alg": "EdDSA", "typ": "JWT", "kid": "k1"}
    signing_input = ".".join(b64url(json.dumps(p, separators=(",", ":")).encode()) for p in (header, claims))
    return f"{signing_input}.{b64url(SIGNING_KEY.sign(signing_input.encode()))}"


PROVIDERS = {
    "fake": {"kind": "openai", "cluster": "fake_openai", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
    "claude": {"kind": "anthropic", "cluster": "fake_openai", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
}
MODELS = {
    "i-gpt": {"provider": "fake", "model": "gpt-4o-mini", "aliases": ["i-gpt-latest"]},
    "i-claude": {"provider": "claude", "model": "claude-sonnet-4-5"},
    "i-big": {"provider": "fake", "model": "gpt-4o"},
}
PLANS = {"restricted": {"models": ["i-gpt"]}, "open": {}}
MESSAGES = [{"role": "user", "content": "one two three"}]

JWT_CONFIG = {
    "providers": PROVIDERS,
    "models": MODELS,
    "consumers": {
        # An API-key consumer: a token whose `sub` is "alice" must not become alice.
        "alice": {"api_keys": [digest("sk-alice")], "plan": "restricted"},
        # Reached by its API key or by the JWT subject it lists.
        "dave": {"api_keys": [digest("sk-dave")], "plan": "restricted", "jwt_subjects": ["dave@idp"]},
        # A token consumer, plan configured: the plan claim cannot change it.
        "bob": {"plan": "restricted"},
        # A token consumer without a plan: the claim chooses it.
        "carol": {},
    },
    "plans": PLANS,
    "quota": {"default_plan": "restricted"},
    "auth": {
        "allow_unlisted_consumers": True,
        "jwt": {"issuers": [ISSUER], "audiences": [AUDIENCE], "leeway_secs": 5, "plan_claim": "plan",
                "keys": [{"kid": "k1", "algorithm": "EdDSA", "public_key_pem": PUBLIC_PEM}]},
    },
}

TRUSTED_CONFIG = {
    "providers": PROVIDERS,
    "models": MODELS,
    "consumers": {"bob": {"plan": "restricted"}, "erin": {}},
    "plans": PLANS,
    "auth": {"trusted": {"header": "x-test-consumer", "plan_header": "x-test-plan"}},
}


def chat(gw, model: str, **headers) -> httpx.Response:
    return httpx.post(f"{gw.base_url}/v1/chat/completions", headers=headers,
                      json={"model": model, "messages": MESSAGES, "max_tokens": 5}, timeout=10)


# ---------------------------------------------------------------- item 8


def test_model_list_needs_a_credential_in_each_dialect(shared_gateway, fake_requests):
    gw = shared_gateway(JWT_CONFIG)
    r = httpx.get(f"{gw.base_url}/v1/models", timeout=10)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="sk-wrong", max_retries=0).models.list()
    with pytest.raises(anthropic.AuthenticationError) as err:
        anthropic.Anthropic(base_url=gw.base_url, api_key="sk-wrong", max_retries=0).models.list()
    assert err.value.body["error"]["type"] == "authentication_error"
    assert fake_requests() == []


def test_model_list_shows_only_the_callers_models(shared_gateway):
    gw = shared_gateway(JWT_CONFIG)
    # alice's plan allows i-gpt only: the model and its alias, through both SDKs.
    listed = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key="sk-alice", max_retries=0).models.list()
    assert sorted(m.id for m in listed.data) == ["i-gpt", "i-gpt-latest"]
    listed = anthropic.Anthropic(base_url=gw.base_url, api_key="sk-alice", max_retries=0).models.list()
    assert sorted(m.id for m in listed.data) == ["i-gpt", "i-gpt-latest"]
    # carol's token names the open plan (she has none configured): every model.
    listed = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=mint("carol", plan="open"),
                           max_retries=0).models.list()
    assert sorted(m.id for m in listed.data) == ["i-big", "i-claude", "i-gpt", "i-gpt-latest"]


# ---------------------------------------------------------------- item 23


def test_a_jwt_subject_cannot_become_an_api_key_consumer(shared_gateway, fake_requests):
    gw = shared_gateway(JWT_CONFIG)
    # Unlisted subjects are allowed here, yet "alice" is an API-key consumer's name: 401.
    r = chat(gw, "i-gpt", authorization=f"Bearer {mint('alice')}")
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "invalid_consumer"
    r = chat(gw, "i-gpt", authorization=f"Bearer {mint('dave')}")
    assert r.status_code == 401, r.text
    assert fake_requests() == [], "refused tokens never reach the provider"
    # dave accepts "dave@idp": the request is dave's (restricted plan: i-big is refused).
    assert chat(gw, "i-gpt", authorization=f"Bearer {mint('dave@idp')}").status_code == 200
    assert chat(gw, "i-big", authorization=f"Bearer {mint('dave@idp')}").status_code == 403
    line = gw.wait_log_line(lambda l: "consumer=dave " in l and "i-gpt" in l)
    assert line is not None, gw.access_log_lines()[-5:]


def test_the_plan_claim_cannot_override_a_configured_plan(shared_gateway):
    gw = shared_gateway(JWT_CONFIG)
    # bob is on "restricted"; a token claiming "open" does not lift it.
    r = chat(gw, "i-big", authorization=f"Bearer {mint('bob', plan='open')}")
    assert r.status_code == 403, r.text
    # carol has no configured plan: the claim applies.
    assert chat(gw, "i-big", authorization=f"Bearer {mint('carol', plan='open')}").status_code == 200


def test_audience_and_issuer_are_enforced(shared_gateway, fake_requests):
    gw = shared_gateway(JWT_CONFIG)
    for token in (mint("bob", aud="another-service"), mint("bob", aud=None),
                  mint("bob", iss="https://evil.invalid"), mint("bob", iss=None)):
        r = chat(gw, "i-gpt", authorization=f"Bearer {token}")
        assert r.status_code == 401, r.text
        assert r.json()["error"]["code"] == "invalid_token"
    assert fake_requests() == []


def test_a_jwt_config_without_audiences_is_refused(envoy_rejects):
    config = json.loads(json.dumps(JWT_CONFIG))
    del config["auth"]["jwt"]["audiences"]
    code, log = envoy_rejects(config)
    assert code != 0
    assert "auth.jwt.audiences: list the accepted `aud` values" in log, log[-2000:]


# ---------------------------------------------------------------- item 22


def test_trusted_headers_never_reach_the_provider_nor_override_a_plan(shared_gateway, fake_requests):
    gw = shared_gateway(TRUSTED_CONFIG)
    # bob is configured on "restricted": a trusted plan header naming "open" does not lift it.
    r = chat(gw, "i-big", **{"x-test-consumer": "bob", "x-test-plan": "open"})
    assert r.status_code == 403, r.text
    # erin has no plan: the trusted plan applies; neither header goes upstream.
    r = chat(gw, "i-big", **{"x-test-consumer": "erin", "x-test-plan": "open"})
    assert r.status_code == 200, r.text
    r = chat(gw, "i-gpt", **{"x-test-consumer": "bob", "x-test-plan": "open"})
    assert r.status_code == 200, r.text
    sent = fake_requests.wait_for(2)
    assert len(sent) == 2
    for request in sent:
        names = {name.lower() for name in request["headers"]}
        assert "x-test-consumer" not in names and "x-test-plan" not in names, request["headers"]
