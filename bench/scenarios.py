"""The benchmark scenarios, as data. bench.py runs every entry of LOAD and STREAM in order.

A load scenario is one target (an Envoy built from bench/envoy/*.tmpl, or the LiteLLM proxy)
under the same wrk load. Fields:

  id, title      short id used in tables (ratios refer to ids) and a one-line description
  target         "envoy" or "litellm"
  filters        Envoy HTTP filters before the router: "json_to_metadata", "noop" (the no-op
                 proxy-wasm filter) or "gateway" (our module); order as listed
  plugin         the gateway's plugin configuration (a dict, serialized as JSON)
  request        "chat" (bench/bodies/chat_request.json) or "chat_stream" (the same with
                 "stream": true, and the header x-bench-stream: 1 so nginx answers with SSE)
  headers        extra request headers (wrk and the smoke request send the same)
  expect         substrings the smoke request's response body must contain (status 200)
  baseline_a/b   ids of the rows this one's throughput is compared with ("vs a", "vs b")
  needs          a feature that is still being built: if Envoy rejects the plugin config
                 (the module's on_configure fails), the scenario is skipped with a printed
                 reason instead of failing the run. Nothing is skipped by name.

When the translation (issue 3) or the identity/budget (issue 4) config schema changes, update
the `plugin` of scenario d or f here; the rest of the benchmark does not change.
"""

from __future__ import annotations

UPSTREAM_KEY_ENV = "BENCH_UPSTREAM_KEY"
JWT_SECRET = "bench-jwt-secret-0123456789abcdef0123456789abcdef"  # HS256; a test secret
JWT_SECRET_ENV = "BENCH_JWT_SECRET"

# Environment variables given to the gateway VM (vm_config.environment_variables).
GATEWAY_ENV = {UPSTREAM_KEY_ENV: "sk-bench-upstream", JWT_SECRET_ENV: JWT_SECRET}

# Every request carries a client credential, as a real client would; the module removes it.
CLIENT_HEADERS = {"authorization": "Bearer sk-bench-client"}
# LiteLLM refuses to start without a master key (bench/litellm.yaml.tmpl); its clients send it.
LITELLM_HEADERS = {"authorization": "Bearer sk-bench-master"}

OPENAI_PROVIDER = {
    "kind": "openai", "cluster": "upstream",
    "auth": {"type": "bearer", "env": UPSTREAM_KEY_ENV},
}

# (c): demo-like, OpenAI client -> OpenAI-kind provider, model renamed.
PLUGIN_OPENAI = {
    "providers": {"bench-openai": OPENAI_PROVIDER},
    "models": {"bench-gpt": {"provider": "bench-openai", "model": "gpt-4o-mini"}},
}

# (d): OpenAI client -> Anthropic provider (issue 3). nginx answers /v1/messages.
PLUGIN_ANTHROPIC = {
    "providers": {"bench-anthropic": {
        "kind": "anthropic", "cluster": "upstream",
        "auth": {"type": "header", "name": "x-api-key", "env": UPSTREAM_KEY_ENV},
    }},
    "models": {"bench-gpt": {"provider": "bench-anthropic", "model": "claude-sonnet-4-5"}},
}

# (f): a consumer identified by an HS256 JWT (sub=bench, plan=bench), with a token budget far
# too large to be reached during the run, so every request pays for verification plus the
# budget's reserve/settle (issue 4). The JWT itself is minted by bench.py (exp in one day).
PLUGIN_JWT_BUDGET = {
    "providers": {"bench-openai": OPENAI_PROVIDER},
    "models": {"bench-gpt": {"provider": "bench-openai", "model": "gpt-4o-mini"}},
    "consumers": {"bench": {"plan": "bench"}},
    "auth": {"jwt": {
        "issuers": ["bench"], "audiences": ["llm-gateway"], "leeway_secs": 60,
        "plan_claim": "plan",
        "keys": [{"kid": "bench", "algorithm": "HS256", "secret_env": JWT_SECRET_ENV}],
    }},
    "plans": {"bench": {"limits": [{"window": "day", "tokens": 1_000_000_000_000_000}]}},
}

OPENAI_JSON = ['"object":"chat.completion"', '"usage"']
OPENAI_SSE = ['chat.completion.chunk', 'data: [DONE]']

LOAD = [
    {"id": "a0", "title": "Envoy, router only (no json_to_metadata, no wasm)",
     "target": "envoy", "filters": [], "request": "chat",
     "expect": OPENAI_JSON, "baseline_a": "a", "baseline_b": "b"},
    {"id": "a", "title": "Envoy, json_to_metadata + router (the module's chain minus wasm)",
     "target": "envoy", "filters": ["json_to_metadata"], "request": "chat",
     "expect": OPENAI_JSON, "baseline_a": "a", "baseline_b": "b"},
    {"id": "b", "title": "(a) + no-op proxy-wasm filter (the ABI floor)",
     "target": "envoy", "filters": ["json_to_metadata", "noop"], "request": "chat",
     "expect": OPENAI_JSON, "baseline_a": "a", "baseline_b": "b"},
    {"id": "c", "title": "(a) + llm-gateway, OpenAI -> OpenAI-kind provider",
     "target": "envoy", "filters": ["json_to_metadata", "gateway"], "plugin": PLUGIN_OPENAI,
     "request": "chat", "expect": OPENAI_JSON, "baseline_a": "a", "baseline_b": "b"},
    {"id": "d", "title": "(a) + llm-gateway, OpenAI -> Anthropic translation",
     "target": "envoy", "filters": ["json_to_metadata", "gateway"], "plugin": PLUGIN_ANTHROPIC,
     "request": "chat", "expect": OPENAI_JSON, "baseline_a": "a", "baseline_b": "b",
     "needs": "translation (issue 3)"},
    {"id": "f", "title": "(a) + llm-gateway, JWT identity + token budget",
     "target": "envoy", "filters": ["json_to_metadata", "gateway"], "plugin": PLUGIN_JWT_BUDGET,
     "request": "chat", "headers": {"authorization": "Bearer {JWT}"},
     "expect": OPENAI_JSON, "baseline_a": "a", "baseline_b": "b",
     "needs": "JWT identity and budgets (issue 4)"},
    {"id": "e-a", "title": "streaming body: (a) Envoy without wasm",
     "target": "envoy", "filters": ["json_to_metadata"], "request": "chat_stream",
     "expect": OPENAI_SSE, "baseline_a": "e-a", "baseline_b": "e-b"},
    {"id": "e-b", "title": "streaming body: (b) no-op wasm",
     "target": "envoy", "filters": ["json_to_metadata", "noop"], "request": "chat_stream",
     "expect": OPENAI_SSE, "baseline_a": "e-a", "baseline_b": "e-b"},
    {"id": "e-c", "title": "streaming body: (c) llm-gateway (SSE decoded, usage chunk stripped)",
     "target": "envoy", "filters": ["json_to_metadata", "gateway"], "plugin": PLUGIN_OPENAI,
     "request": "chat_stream", "expect": OPENAI_SSE, "baseline_a": "e-a", "baseline_b": "e-b"},
    {"id": "g", "title": "LiteLLM proxy (1 worker), same upstream",
     "target": "litellm", "request": "chat", "headers": LITELLM_HEADERS, "expect": OPENAI_JSON,
     "baseline_a": "a", "baseline_b": "b"},
]

# Time to first byte / first event / whole stream, sequential requests against the paced SSE
# upstream (bench/paced_upstream.py), through each target. "direct" is the upstream itself.
STREAM = [
    {"id": "direct", "title": "no proxy (client -> paced upstream)", "target": "direct"},
    {"id": "a", "title": "Envoy without wasm", "target": "envoy", "filters": ["json_to_metadata"]},
    {"id": "b", "title": "Envoy + no-op wasm", "target": "envoy",
     "filters": ["json_to_metadata", "noop"]},
    {"id": "c", "title": "Envoy + llm-gateway", "target": "envoy",
     "filters": ["json_to_metadata", "gateway"], "plugin": PLUGIN_OPENAI},
    {"id": "g", "title": "LiteLLM proxy", "target": "litellm", "headers": LITELLM_HEADERS},
]

# Start-up: Envoy started with wasm trace logs, at --concurrency 1 and 3 (one VM per worker
# plus two on the main thread), to time module compilation and per-VM start-up and to size
# per-VM memory. Ids refer to LOAD.
STARTUP = ["a", "b", "c"]

# BENCH_PROBE=1: bench/probe-filter makes the kinds of host calls the module makes on a routed
# OpenAI request, group by group (see its src/lib.rs), under the load of scenario (b). The
# difference in Envoy CPU per request to p-none prices each group.
def _probe(pid: str, title: str, **groups) -> dict:
    return {"id": pid, "title": title, "target": "envoy", "filters": ["json_to_metadata", "probe"],
            "plugin": groups, "request": "chat", "expect": OPENAI_JSON}


PROBE = [
    _probe("p-none", "probe, all groups off (= no-op filter)"),
    _probe("p-read", "3 header reads, 2 metadata properties, clock", read=True),
    _probe("p-headers", "set :path + cluster header (re-route), auth swap, 7 removes", headers=True),
    _probe("p-body", "request body read and replaced (same bytes)", body=True),
    _probe("p-props", "10 set_property (filter state)", props=True),
    _probe("p-response", "response header reads, response body read", response=True),
    _probe("p-metrics", "5 histogram records + 5 counter increments", metrics=True),
    _probe("p-all", "all of the above", read=True, headers=True, body=True, props=True,
           response=True, metrics=True),
]
