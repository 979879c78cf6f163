"""Fallback across providers through Envoy's retries (issue 12), through real Envoy 1.40.

The module runs twice per request: downstream (identity, budget, routing to the chain's
aggregate cluster, the body kept in the client's dialect) and as a router *upstream HTTP
filter*, once per attempt (translation for the target the attempt reached, its path and
credential, the retry mark, the answer translated back). Envoy's retry policy
(`retriable-headers` on `x-llm-gateway-retry`, `reset`, `connect-failure`, a per-try timeout)
and `previous_priorities` over the aggregate cluster move the request from target to target.

The failing first target is an Anthropic-dialect provider on fault_upstream.py (the fault is
the configured model name); the fallback is an OpenAI-dialect provider on the same server
answering normally (exact usage: 11 input, 48 output tokens). So an OpenAI client's answer
passes through and an Anthropic client's is translated from OpenAI's dialect.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import http.server
import threading
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

import fault_upstream
import harness
from test_faults import classify, sse_events

FIRST_FAULTS = ["rate_limited_429", "server_500", "overloaded_529", "html_502", "reset_before_headers", "stall"]
PER_TRY_TIMEOUT_S = 1.0
KEY = "sk-fallback-consumer"
# Prices in USD per million tokens: the fallback answer costs 11 * 1 + 48 * 2 = 107 micro-USD.
PRICE_OK = {"input": "1", "output": "2"}
PRICE_FIRST = {"input": "10", "output": "20"}
ANSWER_COST = fault_upstream.INPUT_TOKENS * 1 + fault_upstream.OUTPUT_TOKENS * 2
MONTHLY_USD_MICROS = 5_000_000
BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def plugin_config() -> dict:
    providers = {
        "first": {"kind": "anthropic", "cluster": "c_first", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
        "second": {"kind": "openai", "cluster": "c_second", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
    }
    chain = {"cluster": "chain"}
    models = {f"chain-{mode}": {"targets": [{"provider": "first", "model": mode},
                                            {"provider": "second", "model": "ok"}], "fallback": chain}
              for mode in FIRST_FAULTS + ["ok", "dies_before_first_event", "truncated"]}
    # Every target fails: the client gets the last one's error.
    models["chain-all-fail"] = {"targets": [{"provider": "first", "model": "rate_limited_429"},
                                            {"provider": "second", "model": "server_500"}], "fallback": chain}
    # Bedrock (SigV4) behind the first target, on the fake provider: its own aggregate cluster.
    providers["bedrock"] = {"kind": "bedrock", "cluster": "c_bedrock", "region": "us-east-1",
                            "auth": {"type": "aws-sigv4", "access_key_env": "TEST_AWS_ACCESS_KEY_ID",
                                     "secret_key_env": "TEST_AWS_SECRET_ACCESS_KEY"}}
    models["chain-bedrock"] = {"targets": [{"provider": "first", "model": "rate_limited_429"},
                                           {"provider": "bedrock", "model": BEDROCK_MODEL}],
                               "fallback": {"cluster": "chain_bedrock"}}
    # A weighted group: one priority holding both targets' endpoints (cluster `mix`).
    for name, first_model in (("mix-ok", "ok"), ("mix-429", "rate_limited_429")):
        models[name] = {"targets": [{"provider": "first", "model": first_model}, {"provider": "second", "model": "ok"}],
                        "fallback": {"cluster": "mix"}}
    prices = {mode: PRICE_FIRST for mode in FIRST_FAULTS + ["dies_before_first_event", "truncated"]}
    prices[BEDROCK_MODEL] = PRICE_OK
    prices["ok"] = PRICE_OK
    prices["server_500"] = PRICE_OK
    return {
        "providers": providers,
        "models": models,
        "consumers": {"fb": {"api_keys": [hashlib.sha256(KEY.encode()).hexdigest()], "plan": "usd"}},
        "plans": {"usd": {"limits": [{"name": "monthly", "window": "month", "usd": "5.00"}]}},
        "prices": prices,
    }


def fallback_template(workdir: Path, attempt_config: dict, bedrock_port: int | None = None,
                      mix_port: int | None = None) -> Path:
    """The test template with the chain's route (retry policy), the module as an upstream
    filter of the router, and the aggregate cluster over one cluster per target. With
    `bedrock_port`: a Bedrock member on that port in its own chain (`chain_bedrock`), and the
    upstream filters SigV4 needs (Envoy's buffer filter, then the module's header applier).
    With `mix_port`: cluster `mix`, one priority with an endpoint of each target (the first's
    on FAKE_PORT, the second's on `mix_port`), retries going to another host."""
    text = Path(harness.TEMPLATE).read_text()
    # The access-log record (`wasm.llm_log`) carries attempts= and fallbacks= already.
    assert "%FILTER_STATE(wasm.llm_log:PLAIN)%" in text
    route_anchor = "              routes:\n"
    assert route_anchor in text
    chain_route = f"""              routes:
              - match:
                  prefix: "/"
                  headers:
                  - name: x-llm-gateway-cluster
                    string_match: {{exact: chain}}
                route:
                  cluster: chain
                  timeout: 20s
                  retry_policy:
                    retry_on: "retriable-headers,reset,connect-failure"
                    num_retries: 2
                    per_try_timeout: {PER_TRY_TIMEOUT_S}s
                    # The next attempt goes to another target: no point waiting (default 25 ms).
                    retry_back_off: {{base_interval: 0.001s, max_interval: 0.002s}}
                    retriable_headers: [{{name: x-llm-gateway-retry, present_match: true}}]
                    retry_priority:
                      name: envoy.retry_priorities.previous_priorities
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig
                        update_frequency: 1
"""
    if bedrock_port is not None:
        retry = chain_route.split("                route:\n", 1)[1].replace("cluster: chain\n", "cluster: chain_bedrock\n")
        chain_route += f"""              - match:
                  prefix: "/"
                  headers:
                  - name: x-llm-gateway-cluster
                    string_match: {{exact: chain_bedrock}}
                route:
{retry}"""
    if mix_port is not None:
        retry = chain_route.split("                route:\n", 1)[1].replace("cluster: chain\n", "cluster: mix\n")
        retry = retry.replace("                    retry_priority:\n", """\
                    retry_host_predicate:
                    - name: envoy.retry_host_predicates.previous_hosts
                      typed_config:
                        "@type": type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate
                    host_selection_retry_max_attempts: 5
                    retry_priority:
""")
        chain_route += f"""              - match:
                  prefix: "/"
                  headers:
                  - name: x-llm-gateway-cluster
                    string_match: {{exact: mix}}
                route:
{retry}"""
    text = text.replace(route_anchor, chain_route, 1)
    router = """              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"""
    assert text.count(router) == 1
    upstream_filters = router + f"""              upstream_http_filters:
              - name: llm_gateway_attempt
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
                  config:
                    name: llm_gateway_attempt
                    root_id: llm_gateway_attempt
                    vm_config: *llm_gateway_vm
                    configuration:
                      "@type": type.googleapis.com/google.protobuf.StringValue
                      value: {harness.plugin_config_scalar(attempt_config)}
                    failure_policy: FAIL_RELOAD
""" + (SIGV4_UPSTREAM_FILTERS if bedrock_port is not None else "") + """\
              - name: envoy.filters.http.upstream_codec
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec
"""
    text = text.replace(router, upstream_filters)

    def member(name: str, provider: str) -> str:
        return f"""  - name: {name}
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: {name}
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {{{{FAKE_PORT}}}}}}
          metadata: {{filter_metadata: {{llm: {{provider: {provider}}}}}}}
"""
    text += member("c_first", "first") + member("c_second", "second") + """  - name: chain
    connect_timeout: 1s
    # Envoy allows 3 concurrent retries per cluster by default; past that a failed attempt
    # goes to the client as it is (upstream_rq_retry_overflow).
    circuit_breakers:
      thresholds:
      - {max_retries: 1000}
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.aggregate
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig
        clusters: [c_first, c_second]
"""
    if bedrock_port is not None:
        text += member("c_bedrock", "bedrock").replace("{{FAKE_PORT}}", str(bedrock_port)) + """\
  - name: chain_bedrock
    connect_timeout: 1s
    circuit_breakers:
      thresholds:
      - {max_retries: 1000}
    lb_policy: CLUSTER_PROVIDED
    cluster_type:
      name: envoy.clusters.aggregate
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.clusters.aggregate.v3.ClusterConfig
        clusters: [c_first, c_bedrock]
"""
    if mix_port is not None:
        text += f"""  - name: mix
    type: STATIC
    connect_timeout: 1s
    circuit_breakers:
      thresholds:
      - {{max_retries: 1000}}
    load_assignment:
      cluster_name: mix
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {{{{FAKE_PORT}}}}}}
          metadata: {{filter_metadata: {{llm: {{provider: first}}}}}}
          load_balancing_weight: 1
        - endpoint:
            address:
              socket_address: {{address: 127.0.0.1, port_value: {mix_port}}}
          metadata: {{filter_metadata: {{llm: {{provider: second}}}}}}
          load_balancing_weight: 1
"""
    path = workdir / "envoy.fallback.yaml.tmpl"
    path.write_text(text)
    return path


# SigV4 signs the body, which an attempt knows only after its header callback: the buffer
# filter holds the attempt until the body is translated and signed, then a second instance of
# the module (same VM) sets the signature headers.
SIGV4_UPSTREAM_FILTERS = """\
              - name: envoy.filters.http.buffer
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
                  max_request_bytes: 9437184
              - name: llm_gateway_attempt_signer
                typed_config:
                  "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
                  config:
                    name: llm_gateway_attempt_signer
                    root_id: llm_gateway_attempt_signer
                    vm_config: *llm_gateway_vm
                    configuration:
                      "@type": type.googleapis.com/google.protobuf.StringValue
                      value: '{"role": "apply-deferred-headers"}'
                    failure_policy: FAIL_RELOAD
"""


@pytest.fixture(scope="module")
def fb(wasm_path, tmp_path_factory):
    server = fault_upstream.start(harness.free_port())
    workdir = tmp_path_factory.mktemp("fallback")
    bedrock = harness.start_fake(harness.free_port(), str(workdir / "fake-bedrock.log"))
    mix = fault_upstream.start(harness.free_port())
    config = plugin_config()
    template = fallback_template(workdir, {"role": "attempt", "gateway": config}, bedrock_port=bedrock.port,
                                 mix_port=mix.server_address[1])
    factory = harness.GatewayFactory(server.server_address[1], wasm_path, workdir)
    gw = factory.start(config, template=str(template), concurrency=2)
    yield gw
    log = gw.log_text()
    factory.stop_all()
    bedrock.stop()
    mix.shutdown()
    server.shutdown()
    for bad in ("panicked", "Plugin configured to fail", "wasm vm crash", "Function: proxy_on_"):
        assert bad not in log, f"Envoy log shows a wasm failure ({bad!r}):\n{log[-4000:]}"


def spent(gw) -> float:
    """Micro-USD the consumer has spent this month, as the budget gauge reports after its
    last settled request."""
    value = gw.metric("llm_gateway_budget_remaining", llm_consumer="fb", llm_limit="monthly")
    assert value is not None, "no budget gauge yet"
    return MONTHLY_USD_MICROS - value


def cost_metric(gw, **labels) -> float:
    return gw.metric("llm_gateway_cost_usd_micros", llm_consumer="fb", **labels) or 0.0


def openai_client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=KEY, max_retries=0, timeout=15)


def anthropic_client(gw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base_url, api_key=KEY, max_retries=0, timeout=15)


def ask(gw, client: str, model: str, stream: bool) -> tuple[str, dict]:
    """(text, usage) of one request through the official SDK."""
    messages = [{"role": "user", "content": "tell me about fallbacks"}]
    if client == "openai":
        c = openai_client(gw)
        if stream:
            chunks = list(c.chat.completions.create(model=model, messages=messages, max_tokens=256, stream=True,
                                                    stream_options={"include_usage": True}))
            text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
            usage = chunks[-1].usage
            return text, {"input": usage.prompt_tokens, "output": usage.completion_tokens}
        r = c.chat.completions.create(model=model, messages=messages, max_tokens=256)
        return r.choices[0].message.content, {"input": r.usage.prompt_tokens, "output": r.usage.completion_tokens}
    c = anthropic_client(gw)
    if stream:
        with c.messages.stream(model=model, messages=messages, max_tokens=256) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        return text, {"input": final.usage.input_tokens, "output": final.usage.output_tokens}
    r = c.messages.create(model=model, messages=messages, max_tokens=256)
    return r.content[0].text, {"input": r.usage.input_tokens, "output": r.usage.output_tokens}


def access_lines(gw, model: str) -> list[str]:
    return [l for l in gw.access_log_lines() if f"model={model} " in l]


def next_access_line(gw, model: str, seen: int) -> str:
    """The access-log line of the request after the `seen` ones of `model` (Envoy writes a
    line when the stream ends and flushes every 100 ms)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = access_lines(gw, model)
        if len(lines) > seen:
            return lines[seen]
        time.sleep(0.05)
    raise AssertionError(f"no access-log line for {model}: {gw.access_log_lines()[-5:]}")


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", FIRST_FAULTS)
def test_first_target_fails_the_fallback_answers(fb, fault, client, stream):
    model = f"chain-{fault}"
    before_cost = cost_metric(fb, gen_ai_request_model=model)
    before_fallbacks = fb.metric("llm_gateway_fallbacks", gen_ai_request_model=model) or 0.0
    seen = len(access_lines(fb, model))
    text, usage = ask(fb, client, model, stream)
    assert text == fault_upstream.TEXT
    assert usage == {"input": fault_upstream.INPUT_TOKENS, "output": fault_upstream.OUTPUT_TOKENS}
    # Priced at the model that answered (not at the first target's higher price).
    assert cost_metric(fb, gen_ai_request_model=model) - before_cost == ANSWER_COST
    assert fb.metric("llm_gateway_cost_usd_micros", gen_ai_request_model=model,
                     gen_ai_provider_name="second", gen_ai_target_model="ok") >= ANSWER_COST
    assert (fb.metric("llm_gateway_fallbacks", gen_ai_request_model=model) or 0) - before_fallbacks == 1
    line = next_access_line(fb, model, seen)
    first_status = {"rate_limited_429": "429", "server_500": "500", "overloaded_529": "529",
                    "html_502": "502"}.get(fault, "-")
    first_reason = "fallback" if first_status != "-" else "no_response"
    assert f"attempts=first/{fault}:{first_status}:{first_reason},second/ok:200:ok " in line, line
    assert "fallbacks=1 " in line and "provider=second " in line and "target=ok " in line, line
    assert f"cost_usd_micros={ANSWER_COST} " in line, line


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_fallback_to_bedrock_is_signed_per_attempt(fb, client, stream):
    """The first target (Anthropic) is rate limited; Bedrock answers, its request translated
    to Converse and SigV4-signed over that body in the attempt (the fake verifies the
    signature), its answer (JSON or binary eventstream) translated back."""
    seen = len(access_lines(fb, "chain-bedrock"))
    text, usage = ask(fb, client, "chain-bedrock", stream)
    assert text == "echo: tell me about fallbacks"
    # The fake's counts: words of the messages + 2 per message; words of the reply.
    assert usage == {"input": 4 + 2, "output": len(text.split())}
    line = next_access_line(fb, "chain-bedrock", seen)
    assert f"attempts=first/rate_limited_429:429:fallback,bedrock/{BEDROCK_MODEL}:200:ok " in line, line
    assert f"cost_usd_micros={6 * 1 + 5 * 2} " in line, line


def test_weighted_group_spreads_and_falls_back_within_its_priority(fb):
    """Targets may share a priority (a weighted group): one cluster holding an endpoint of
    each, the attempt telling them apart by metadata; a retry goes to another host."""
    seen = len(access_lines(fb, "mix-ok"))
    for _ in range(16):
        assert ask(fb, "openai", "mix-ok", False)[0] == fault_upstream.TEXT
    lines = [next_access_line(fb, "mix-ok", seen + i) for i in range(16)]
    answered = {l.split(" provider=")[1].split(" ")[0] for l in lines}
    assert answered == {"first", "second"}, lines
    assert all("fallbacks=0 " in l for l in lines), lines
    # The first target rate limited: every request is answered by the second, directly or
    # after one fallback.
    seen = len(access_lines(fb, "mix-429"))
    for _ in range(12):
        assert ask(fb, "anthropic", "mix-429", True)[0] == fault_upstream.TEXT
    lines = [next_access_line(fb, "mix-429", seen + i) for i in range(12)]
    shapes = {l.split(" attempts=")[1].split(" ")[0] for l in lines}
    assert shapes <= {"second/ok:200:ok", "first/rate_limited_429:429:fallback,second/ok:200:ok"}, shapes
    assert "first/rate_limited_429:429:fallback,second/ok:200:ok" in shapes, shapes


@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_first_target_answers_translated_without_fallback(fb, client):
    seen = len(access_lines(fb, "chain-ok"))
    text, usage = ask(fb, client, "chain-ok", stream=False)
    assert text == fault_upstream.TEXT
    assert usage == {"input": fault_upstream.INPUT_TOKENS, "output": fault_upstream.OUTPUT_TOKENS}
    line = next_access_line(fb, "chain-ok", seen)
    assert "attempts=first/ok:200:ok " in line and "fallbacks=0 " in line, line
    assert "provider=first " in line and f"cost_usd_micros={ANSWER_COST} " in line, line


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_all_targets_fail_last_error_in_client_dialect(fb, client, stream):
    ask(fb, "openai", "chain-server_500", False)  # the budget gauge exists and is settled
    before = spent(fb)
    seen = len(access_lines(fb, "chain-all-fail"))
    if client == "openai":
        with pytest.raises(openai.InternalServerError) as info:
            ask(fb, client, "chain-all-fail", stream)
        body = info.value.response.json()
        assert body["error"]["type"] and body["error"]["message"].startswith("The server had an error")
    else:
        with pytest.raises(anthropic.InternalServerError) as info:
            ask(fb, client, "chain-all-fail", stream)
        body = info.value.response.json()
        assert body["type"] == "error" and body["error"]["message"].startswith("The server had an error")
    assert info.value.status_code == 500
    assert "x-llm-gateway-retry" not in info.value.response.headers
    line = next_access_line(fb, "chain-all-fail", seen)
    # The last target's error is not marked for retry: no target is left.
    assert "attempts=first/rate_limited_429:429:fallback,second/server_500:500:error " in line, line
    assert "fallbacks=1 " in line and "cost_usd_micros=- " in line, line
    # Failed attempts cost nothing: the reservation was released (a later request settles
    # and refreshes the gauge).
    ask(fb, "openai", "chain-server_500", False)
    assert spent(fb) - before == ANSWER_COST


# What the client gets when a stream fails after its 200 headers reached it (no fallback is
# possible then): a stream cut before its end ends with an error event in the client's
# dialect; a reset resets the client's stream too (Envoy sends the module no end of stream;
# the same as without fallback, test_faults.py `reset_mid_body`), measured here.
AFTER_HEADERS = {"truncated": "stream error event", "dies_before_first_event": "cut"}


@pytest.mark.parametrize("fault", AFTER_HEADERS)
@pytest.mark.parametrize("client", ["openai", "anthropic"])
def test_stream_that_fails_after_its_headers_is_not_retried(fb, client, fault):
    """Envoy forwards a 200's headers at once and no wasm filter can hold them until the
    first event (pausing response headers stops the body too; bench/fallback-probe), so a
    stream that fails after its headers is answered by the first target, never retried."""
    messages = [{"role": "user", "content": "x"}]
    body = {"model": f"chain-{fault}", "max_tokens": 64, "messages": messages, "stream": True}
    if client == "openai":
        url, headers = f"{fb.base_url}/v1/chat/completions", {"authorization": f"Bearer {KEY}"}
    else:
        url, headers = f"{fb.base_url}/v1/messages", {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
    seen = len(access_lines(fb, f"chain-{fault}"))
    received = b""
    status, content_type = None, ""
    try:
        with httpx.stream("POST", url, headers=headers, json=body, timeout=10) as r:
            status, content_type = r.status_code, r.headers.get("content-type", "")
            for part in r.iter_bytes():
                received += part
    except (httpx.RemoteProtocolError, httpx.ReadError):
        status = None
    assert classify(client, True, status, content_type, received) == AFTER_HEADERS[fault], received
    line = next_access_line(fb, f"chain-{fault}", seen)
    assert f"attempts=first/{fault}:200:ok " in line and "fallbacks=0 " in line, line


def test_no_double_charge_under_concurrency(fb):
    """60 concurrent requests that each fall back once: one reservation each, settled once
    at the answering target's price, nothing left reserved."""
    ask(fb, "openai", "chain-server_500", False)  # the gauge exists
    before = spent(fb)
    jobs = [("openai" if i % 2 else "anthropic", f"chain-{FIRST_FAULTS[i % 3]}", bool(i % 4 < 2)) for i in range(60)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda j: ask(fb, *j), jobs))
    assert all(text == fault_upstream.TEXT for text, _ in results)
    ask(fb, "openai", "chain-server_500", False)  # settles after every concurrent request
    assert spent(fb) - before == ANSWER_COST * (len(jobs) + 1)


# ----------------------------------------------------------------------------- key pools

POOL_KEYS = {"Bearer sk-upstream-test-key": "ok", "Bearer sk-pool-b": "429", "Bearer sk-pool-c": "401",
             "Bearer sk-pool-d": "ok"}


class KeyedProvider(http.server.ThreadingHTTPServer):
    """An OpenAI-dialect provider whose answer depends on the key: key A answers, key B is
    rate limited (Retry-After: 30), key C is refused. Records the key of every request."""
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, port: int):
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", port), KeyedHandler)


class KeyedHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("content-length") or 0))
        key = self.headers.get("authorization", "")
        self.server.seen.append(key)
        outcome = POOL_KEYS.get(key, "401")
        if outcome == "ok":
            body, status, extra = fault_upstream.openai_json("gpt-4o", fault_upstream.TEXT, True), 200, {}
        elif outcome == "429":
            body = fault_upstream.json_error(False, "rate_limit_error", "Rate limit reached")
            status, extra = 429, {"retry-after": "30"}
        else:
            body = fault_upstream.json_error(False, "invalid_request_error", "Incorrect API key provided")
            status, extra = 401, {}
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


def pool_config() -> dict:
    """`oa` has a pool of three keys (A answers, B is rate limited, C refused); `gpt` uses it
    alone, `gpt-chain` falls back from it to `backup` (key D)."""
    pool = {"type": "bearer", "env": "TEST_OPENAI_KEY", "pool": ["TEST_POOL_KEY_B", "TEST_POOL_KEY_C"]}
    return {
        "providers": {"oa": {"kind": "openai", "cluster": "fake_openai", "auth": pool},
                      "first": {"kind": "openai", "cluster": "c_first", "auth": pool},
                      "second": {"kind": "openai", "cluster": "c_second",
                                 "auth": {"type": "bearer", "env": "TEST_POOL_KEY_D"}}},
        "models": {"gpt": {"provider": "oa", "model": "gpt-4o"},
                   "gpt-chain": {"targets": [{"provider": "first", "model": "gpt-4o"},
                                             {"provider": "second", "model": "gpt-4o"}],
                                 "fallback": {"cluster": "chain"}}},
    }


@pytest.fixture(scope="module")
def pooled(wasm_path, tmp_path_factory):
    server = KeyedProvider(harness.free_port())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    workdir = tmp_path_factory.mktemp("keypool")
    config = pool_config()
    template = fallback_template(workdir, {"role": "attempt", "gateway": config})
    text = template.read_text()
    anchor = "                      TEST_OPENAI_KEY: sk-upstream-test-key\n"
    assert anchor in text
    template.write_text(text.replace(anchor, anchor + "".join(
        f"                      TEST_POOL_KEY_{k}: sk-pool-{k.lower()}\n" for k in "BCD")))
    factory = harness.GatewayFactory(server.server_address[1], wasm_path, workdir)
    gw = factory.start(config, template=str(template), concurrency=2)
    yield gw, server
    factory.stop_all()
    server.shutdown()


def chat(gw, model: str) -> httpx.Response:
    return httpx.post(f"{gw.base_url}/v1/chat/completions", timeout=10, headers={"connection": "close"},
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def test_a_chain_falls_back_when_its_pooled_key_is_limited_or_refused(pooled):
    """Run first (the keys' state is shared by the module's tests): in a chain, the key that
    got 429 or 401 costs the client nothing: the next target answers."""
    gw, server = pooled
    for _ in range(60):
        seen = len(server.seen)
        r = chat(gw, "gpt-chain")
        assert r.status_code == 200, r.text
        used = server.seen[seen:]
        if used[0] in ("Bearer sk-pool-b", "Bearer sk-pool-c"):
            assert used[1:] == ["Bearer sk-pool-d"], used  # the backup target answered
        else:
            assert used == ["Bearer sk-upstream-test-key"], used
        # Until every key of the pool was tried (A is the only one left once B cools and C
        # is out, so it comes at the latest right after them).
        if {"Bearer sk-pool-b", "Bearer sk-pool-c", "Bearer sk-upstream-test-key"} <= set(server.seen):
            break
    assert {"Bearer sk-pool-b", "Bearer sk-pool-c", "Bearer sk-upstream-test-key"} <= set(server.seen), server.seen


def test_key_pool_spreads_cools_down_and_takes_out_across_workers(pooled):
    """`gpt` (a single target) after the chain test: the pool's keys B and C were used once,
    by either worker, and are skipped by every worker since."""
    gw, server = pooled
    assert {"Bearer sk-pool-b", "Bearer sk-pool-c", "Bearer sk-upstream-test-key"} <= set(server.seen)
    log = gw.log_text()
    assert "provider `first` refused key #3 of its pool (HTTP 401)" in log, log[-3000:]
    assert "sk-pool-c" not in log
    # From now on every worker skips B (cooling for 30 s) and C (out): only A is used.
    seen_before = len(server.seen)
    workers_before = worker_connections(gw)
    for i in range(40):
        r = chat(gw, "gpt" if i % 2 else "gpt-chain")
        assert r.status_code == 200, r.text
    assert set(server.seen[seen_before:]) == {"Bearer sk-upstream-test-key"}
    # Both workers served some of those requests.
    after = worker_connections(gw)
    assert len(after) == 2 and all(after[w] > workers_before.get(w, 0) for w in after), (workers_before, after)


def worker_connections(gw) -> dict[str, int]:
    """Downstream connections per worker of the listener (`listener.<addr>.worker_N.downstream_cx_total`)."""
    text = httpx.get(f"http://127.0.0.1:{gw.admin_port}/stats?filter=worker_.*downstream_cx_total", timeout=5).text
    out = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        if f"127.0.0.1_{gw.port}." in name:
            out[name.split(".worker_")[1].split(".")[0]] = int(value)
    return out


def test_an_http2_body_ending_with_trailers_is_translated_per_attempt(fb):
    """An HTTP/2 request whose body ends with a trailers frame: the attempts translate it
    all the same (Anthropic fails, OpenAI answers), never forwarding it untranslated."""
    import h2client
    body = json.dumps({"model": "chain-rate_limited_429", "max_tokens": 64,
                       "messages": [{"role": "user", "content": "tell me about fallbacks"}]}).encode()
    seen = len(access_lines(fb, "chain-rate_limited_429"))
    r = h2client.h2_request(fb.port, "POST", "/v1/chat/completions",
                            {"content-type": "application/json", "authorization": f"Bearer {KEY}"},
                            body, chunk=7, trailers={"x-end": "1"})
    assert r.status == 200, r.body
    assert r.json()["choices"][0]["message"]["content"] == fault_upstream.TEXT
    line = next_access_line(fb, "chain-rate_limited_429", seen)
    assert "attempts=first/rate_limited_429:429:fallback,second/ok:200:ok " in line, line
