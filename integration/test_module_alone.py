"""The module alone: no json_to_metadata, no buffer filter, no second instance; only the wasm
filter, the header-matched route and the router (what a mesh gives you without EnvoyFilter /
EnvoyPatchPolicy, e.g. an Istio ambient waypoint). README "Adding it to your Envoy" says what
works then: a client that names the model in the `x-llm-model` header is routed (credentials,
translation, metering as usual); a client that names it only in the body gets Envoy's 404
`route_not_found`, and nothing reaches the provider.
"""
from __future__ import annotations

import openai
import pytest

import harness

CONFIG = {
    "providers": {"fake": {"kind": "openai", "cluster": "fake_openai",
                           "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}}},
    "models": {"alone-gpt": {"provider": "fake", "model": "gpt-4o-mini"}},
}
MESSAGES = [{"role": "user", "content": "one two three"}]


def module_alone_template(workdir) -> str:
    text = harness.TEMPLATE.read_text()
    text = cut(text, "# a. Parse `model`", "# b. The gateway module.")
    text = cut(text, "# c. Only for AWS SigV4", "# d. Forward")
    assert "json_to_metadata" not in text.split("http_filters:")[1]
    assert "envoy.filters.http.buffer" not in text and "llm_gateway_signer" not in text
    path = workdir / "envoy.module-alone.yaml.tmpl"
    path.write_text(text)
    return str(path)


def cut(text: str, start_marker: str, end_marker: str) -> str:
    """Remove whole lines from the line holding start_marker to the line before end_marker."""
    lines = text.splitlines(keepends=True)
    first = next(i for i, line in enumerate(lines) if start_marker in line)
    last = next(i for i, line in enumerate(lines) if end_marker in line and i > first)
    return "".join(lines[:first] + lines[last:])


@pytest.fixture(scope="module")
def alone(fake, wasm_path, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("alone")
    factory = harness.GatewayFactory(fake.port, wasm_path, workdir)
    gw = factory.start(CONFIG, template=module_alone_template(workdir), concurrency=1)
    yield gw
    factory.stop_all()


def test_a_model_named_in_the_header_is_routed_without_native_filters(alone, fake_requests):
    client = openai.OpenAI(base_url=f"{alone.base_url}/v1", api_key="sk-client", max_retries=0,
                           default_headers={"x-llm-model": "alone-gpt"})
    answer = client.chat.completions.create(model="alone-gpt", messages=MESSAGES, max_tokens=16)
    assert answer.choices[0].message.content
    upstream = fake_requests.last()
    # Routed by the module: the provider's model and key, the client's key and the model header gone.
    assert upstream["body"]["model"] == "gpt-4o-mini"
    headers = {k.lower(): v for k, v in upstream["headers"].items()}
    assert headers["authorization"] == "Bearer sk-upstream-test-key"
    assert "x-llm-model" not in headers


def test_a_model_only_in_the_body_reaches_no_provider_without_json_to_metadata(alone, fake_requests):
    """The module learns no model at header time, so it chooses no provider and sets no
    x-llm-gateway-cluster; without the buffer filter the router acts on the headers before the
    module's body callback could answer with its own error, and no route matches: Envoy's 404
    (`route_not_found`, in the client's error shape), and nothing reaches the provider."""
    client = openai.OpenAI(base_url=f"{alone.base_url}/v1", api_key="sk-client", max_retries=0)
    with pytest.raises(openai.NotFoundError) as refused:
        client.chat.completions.create(model="alone-gpt", messages=MESSAGES, max_tokens=16)
    assert "route_not_found" in str(refused.value), refused.value
    assert fake_requests() == [], "nothing reached the provider"
