"""Fault injection through real Envoy (issue 10): a misbehaving provider (fault_upstream.py)
x OpenAI and Anthropic clients x passthrough and translated x stream and not.

Every cell asserts:
- the client gets a well-formed answer, or an error in its own dialect (JSON in OpenAI's
  `{"error": {...}}` / Anthropic's `{"type": "error", ...}` shape, or an SSE stream ending with
  an error event), and never a fragment of the provider key;
- usage is counted: an answered request has input and output tokens (reported or estimated,
  `gen_ai_client_token_count{usage_source=...}`), a failed one none;
- the budget reservation is settled or released: after a probe request of the same consumer,
  the limit minus `llm_gateway_budget_remaining` equals every token the consumer was counted;
- the VM did not reload: the probe answers 200 and the Envoy log has no wasm failure.

What the host does not allow, measured here: once a response has started, a reset from the
provider resets the client's stream too (Envoy sends no more body and no end of stream to the
module), so `reset_mid_body` cells may end in a cut connection; they are still counted. And
the status goes out before the body is seen (pausing the response headers stops the body
too), so a 2xx JSON body cut short or past the buffer becomes an error body under the 2xx.
The matrix is printed at the end of the module (`pytest -s` shows it).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

import fault_upstream
import harness

ROUTE_TIMEOUT_S = 1.5
RESPONSE_BUFFER = 65536
DAILY_TOKENS = 10_000_000
CLIENTS = ["openai", "anthropic"]
PATHS = ["passthrough", "translated"]
STREAMS = [False, True]
MODES = [m for m in fault_upstream.MODES if m != "ok"]
CELLS = [(m, c, p, s) for m in MODES for c in CLIENTS for p in PATHS for s in STREAMS]
RESULTS: dict[tuple, str] = {}
TRAILERS_ENABLED = """\
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config:
          http_protocol_options: {enable_trailers: true}
"""


def cell_id(cell) -> str:
    mode, client, path, stream = cell
    return f"{mode}-{client}-{path}-{'stream' if stream else 'json'}"


def key(n: int | str) -> str:
    return f"sk-fault-consumer-{n}"


def plugin_config() -> dict:
    providers = {
        "oa": {"kind": "openai", "cluster": "fake_openai", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
        "an": {"kind": "anthropic", "cluster": "fake_openai", "auth": {"type": "api-key", "env": "TEST_OPENAI_KEY"}},
        "gone": {"kind": "openai", "cluster": "no_such_cluster", "auth": {"type": "bearer", "env": "TEST_OPENAI_KEY"}},
    }
    models = {"gone": {"provider": "gone", "model": "ok"}}
    for mode in fault_upstream.MODES:
        models[f"oa-{mode}"] = {"provider": "oa", "model": mode}
        models[f"an-{mode}"] = {"provider": "an", "model": mode}
    consumers = {f"c{i}": {"api_keys": [hashlib.sha256(key(i).encode()).hexdigest()], "plan": "big"}
                 for i in range(len(CELLS))}
    return {
        "providers": providers,
        "models": models,
        "consumers": consumers,
        "plans": {"big": {"limits": [{"name": "tpd", "window": "day", "tokens": DAILY_TOKENS}]}},
        "limits": {"max_response_body_bytes": RESPONSE_BUFFER},
    }


@pytest.fixture(scope="module")
def fault_gw(wasm_path, tmp_path_factory):
    server = fault_upstream.start(harness.free_port())
    workdir = tmp_path_factory.mktemp("faults")
    # The test Envoy with a short route timeout, so `stall` ends fast.
    template = workdir / "envoy.faults.yaml.tmpl"
    text = Path(harness.TEMPLATE).read_text()
    assert "timeout: 300s" in text
    text = text.replace("timeout: 300s", f"timeout: {ROUTE_TIMEOUT_S}s")
    # Upstream HTTP/1.1 trailers reach the module (Envoy drops them without enable_trailers).
    cluster = "  - name: fake_openai\n    type: STATIC\n"
    assert cluster in text
    text = text.replace(cluster, cluster + TRAILERS_ENABLED, 1)
    template.write_text(text)
    factory = harness.GatewayFactory(server.server_address[1], wasm_path, workdir)
    gw = factory.start(plugin_config(), template=str(template), concurrency=1)
    yield gw
    log = gw.log_text()
    factory.stop_all()
    server.shutdown()
    print_matrix()
    # The VM never crashed or reloaded during the whole matrix.
    for bad in ("panicked", "Plugin configured to fail", "wasm vm crash", "Function: proxy_on_", "failed to"):
        assert bad not in log, f"Envoy log shows a wasm failure ({bad!r}):\n{log[-4000:]}"


def print_matrix() -> None:
    lines = ["", "| fault | client | path | mode | client sees | usage |", "|---|---|---|---|---|---|"]
    for cell in CELLS:
        mode, client, path, stream = cell
        lines.append(f"| {mode} | {client} | {path} | {'stream' if stream else 'json'} | "
                     f"{RESULTS.get(cell, 'not run')} |")
    print("\n".join(lines))


def model_for(mode: str, client: str, path: str) -> str:
    same = "oa" if client == "openai" else "an"
    other = "an" if client == "openai" else "oa"
    return f"{same if path == 'passthrough' else other}-{mode}"


def request(gw, client: str, model: str, stream: bool, consumer: str):
    messages = [{"role": "user", "content": "tell me about fault injection"}]
    body = {"model": model, "max_tokens": 256, "messages": messages, "stream": stream}
    if client == "openai":
        return "POST", f"{gw.base_url}/v1/chat/completions", {"authorization": f"Bearer {consumer}"}, body
    headers = {"x-api-key": consumer, "anthropic-version": "2023-06-01"}
    return "POST", f"{gw.base_url}/v1/messages", headers, body


def send(gw, client, model, stream, consumer) -> tuple[int | None, str, bytes]:
    """(status, content-type, body); status None when the connection was cut."""
    method, url, headers, body = request(gw, client, model, stream, consumer)
    received = b""
    try:
        with httpx.stream(method, url, headers=headers, json=body, timeout=10) as r:
            for part in r.iter_bytes():
                received += part
            return r.status_code, r.headers.get("content-type", ""), received
    except (httpx.RemoteProtocolError, httpx.ReadError) as e:
        return None, type(e).__name__, received


def is_error(client: str, value) -> bool:
    if not isinstance(value, dict):
        return False
    if client == "openai":
        e = value.get("error")
        return isinstance(e, dict) and all(k in e for k in ("message", "type", "param", "code"))
    return value.get("type") == "error" and isinstance(value.get("error"), dict) \
        and isinstance(value["error"].get("message"), str) and isinstance(value["error"].get("type"), str)


def is_answer(client: str, value) -> bool:
    if client == "openai":
        return isinstance(value, dict) and value.get("object") == "chat.completion" \
            and isinstance(value["choices"][0]["message"]["content"], str)
    return isinstance(value, dict) and value.get("type") == "message" and value["content"][0]["type"] == "text"


def sse_events(body: bytes) -> list[tuple[str | None, str]]:
    events = []
    for block in re.split(r"\r?\n\r?\n", body.decode("utf-8", "replace")):
        if not block.strip():
            continue
        kind = None
        data = []
        for line in block.splitlines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip())
        events.append((kind, "\n".join(data)))
    return events


def classify(client: str, stream: bool, status, content_type: str, body: bytes) -> str:
    """What the client got: `answer`, `error NNN` (JSON error in its dialect, status NNN),
    `stream answer`, `stream error event`, `cut`; anything else fails the test."""
    assert b"sk-upstr" not in body and b"**********" not in body, body[:500]
    if status is None:
        return "cut"
    if "text/event-stream" in content_type:
        assert stream and status == 200, (status, body[:300])
        events = sse_events(body)
        assert events, body
        kind, data = events[-1]
        if client == "openai":
            if data == "[DONE]" and len(events) >= 2 and is_error(client, json.loads(events[-2][1])):
                return "stream error event"
            if data == "[DONE]":
                return "stream answer"
            assert is_error(client, json.loads(data)), events[-3:]
            return "stream error event"
        if kind == "message_stop":
            return "stream answer"
        assert kind == "error" and is_error(client, json.loads(data)), events[-3:]
        return "stream error event"
    assert content_type.startswith("application/json"), (status, content_type, body[:300])
    value = json.loads(body)
    if status == 200 and is_answer(client, value):
        return "answer"
    assert is_error(client, value), (status, body[:500])
    return f"error {status}"


def counted(gw, consumer: str) -> dict[str, dict[str, float]]:
    """Tokens counted for a consumer: {usage_source: {token_type: count}}."""
    out: dict[str, dict[str, float]] = {}
    for labels, value in harness.parse_prometheus(gw.prometheus()).get("gen_ai_client_token_count", []):
        if labels.get("llm_consumer") == consumer:
            source = out.setdefault(labels.get("usage_source", "?"), {})
            kind = labels.get("gen_ai_token_type", "?")
            source[kind] = source.get(kind, 0) + value
    return out


def remaining(gw, consumer: str) -> float | None:
    return harness.metric_value(gw.prometheus(), "llm_gateway_budget_remaining", llm_consumer=consumer)


def sdk_check(gw, client: str, model: str, consumer: str) -> str:
    """The official SDK on a non-streaming call: an answer, or an APIStatusError it parsed."""
    try:
        if client == "openai":
            c = openai.OpenAI(base_url=f"{gw.base_url}/v1", api_key=consumer, max_retries=0, timeout=10)
            reply = c.chat.completions.create(model=model, max_tokens=256,
                                              messages=[{"role": "user", "content": "hi"}])
            assert reply.choices[0].message.content
        else:
            c = anthropic.Anthropic(base_url=gw.base_url, api_key=consumer, max_retries=0, timeout=10)
            reply = c.messages.create(model=model, max_tokens=256, messages=[{"role": "user", "content": "hi"}])
            assert reply.content[0].text
        return "answer"
    except (openai.APIStatusError, anthropic.APIStatusError) as e:
        # The OpenAI SDK keeps the inner error object as `body`.
        assert is_error(client, e.body) or is_error(client, {"error": e.body}), e.body
        assert "sk-upstr" not in str(e.message)
        return f"SDK {type(e).__name__}"


# What each fault must give the client (`cut` only where the host allows nothing better).
EXPECTED = {
    "reset_before_headers": {"error 503"},
    "reset_mid_body": {"cut", "stream error event"},
    "stall": {"error 504"},
    # The status went out before the body was known (see the module docstring).
    "truncated": {"stream error event", "error 200"},
    "non_json_200": {"error 502"},
    "html_502": {"error 502"},
    "huge": {"answer", "stream answer", "error 200"},
    "no_usage": {"answer", "stream answer"},
    "slow_drip": {"answer", "stream answer"},
    "auth_401": {"error 502"},
    # An answer ending with trailers is read, counted and delivered like any other.
    "trailers": {"answer", "stream answer"},
}
ANSWERED = {"answer", "stream answer", "stream error event", "cut", "error 200"}


@pytest.mark.parametrize("cell", CELLS, ids=[cell_id(c) for c in CELLS])
def test_fault_cell(fault_gw, cell):
    gw = fault_gw
    mode, client, path, stream = cell
    index = CELLS.index(cell)
    consumer_key, consumer = key(index), f"c{index}"
    model = model_for(mode, client, path)

    status, content_type, body = send(gw, client, model, stream, consumer_key)
    seen = classify(client, stream, status, content_type, body)
    assert seen in EXPECTED[mode], f"{cell_id(cell)}: {seen} ({status} {content_type} {body[:300]!r})"
    if not stream and seen in ("answer", "error 502"):
        sdk = sdk_check(gw, client, model, consumer_key)
        seen += f" / {sdk}"

    # A probe of the same consumer settles after everything before it: the budget then
    # shows every token counted, and nothing held.
    probe_status, _, probe_body = send(gw, "openai", "oa-ok", False, consumer_key)
    assert probe_status == 200, probe_body[:300]
    probe_tokens = fault_upstream.INPUT_TOKENS + fault_upstream.OUTPUT_TOKENS
    deadline_counts = None
    for _ in range(50):
        counts = counted(gw, consumer)
        total = sum(sum(v for t, v in kinds.items() if t in ("input", "output")) for kinds in counts.values())
        left = remaining(gw, consumer)
        if left is not None and total >= probe_tokens and DAILY_TOKENS - left == total:
            break
        deadline_counts = (counts, left)
        time.sleep(0.05)
    else:
        pytest.fail(f"budget and counted tokens disagree: {deadline_counts}")
    fault_counts = {src: {t: v for t, v in kinds.items()} for src, kinds in counts.items()}
    # Take the probe (reported, 11 + 48) out to see the faulty request's own count.
    fault_counts["reported"]["input"] -= fault_upstream.INPUT_TOKENS
    fault_counts["reported"]["output"] -= fault_upstream.OUTPUT_TOKENS
    fault_counts = {src: {t: v for t, v in kinds.items() if v} for src, kinds in fault_counts.items()}
    fault_counts = {src: kinds for src, kinds in fault_counts.items() if kinds}
    answered = seen.split(" / ")[0] in ANSWERED
    if answered:
        outputs = {src: kinds.get("output", 0) for src, kinds in fault_counts.items()}
        assert sum(outputs.values()) > 0, f"answered but no output counted: {fault_counts}"
        usage = ",".join(f"{src}: in {int(k.get('input', 0))} out {int(k.get('output', 0))}"
                         for src, k in sorted(fault_counts.items()))
    else:
        assert not fault_counts, f"a failed request was charged: {fault_counts}"
        usage = "none (released)"
    if mode == "auth_401":
        # The provider's detail (quoting its key) is in Envoy's log, never in the answer.
        wanted = "answered HTTP 401 to the gateway's credentials: "
        for _ in range(50):
            if any(wanted in line and fault_upstream.KEY_QUOTE in line for line in gw.log_text().splitlines()):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"no log line with the provider's detail:\n{gw.log_tail()}")
    if mode in ("no_usage", "huge") and answered:
        assert "estimated" in fault_counts, fault_counts
    RESULTS[cell] = f"{seen} | {usage}"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("path", PATHS)
def test_sdks_raise_on_a_stream_the_provider_cut(fault_gw, client, path):
    """The official SDKs read the gateway's closing error event as an API error."""
    model = model_for("truncated", client, path)
    messages = [{"role": "user", "content": "hi"}]
    seen = []
    if client == "openai":
        c = openai.OpenAI(base_url=f"{fault_gw.base_url}/v1", api_key=key(0), max_retries=0, timeout=10)
        with pytest.raises(openai.APIError) as err:
            for chunk in c.chat.completions.create(model=model, max_tokens=64, messages=messages, stream=True):
                seen.extend(choice.delta.content or "" for choice in chunk.choices)
    else:
        c = anthropic.Anthropic(base_url=fault_gw.base_url, api_key=key(0), max_retries=0, timeout=10)
        with pytest.raises(anthropic.APIError) as err:
            for event in c.messages.create(model=model, max_tokens=64, messages=messages, stream=True):
                if event.type == "content_block_delta":
                    seen.append(event.delta.text)
    assert "ended early" in str(err.value), err.value
    assert "".join(seen), "the text before the cut reached the client"


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("stream", STREAMS)
def test_an_envoy_local_reply_without_the_provider_is_json(fault_gw, client, stream):
    """A provider whose cluster no route serves (routes match the module's x-llm-gateway-cluster
    header): Envoy answers 404 itself (`route_not_found`), nothing goes upstream."""
    status, content_type, body = send(fault_gw, client, "gone", stream, key(1))
    assert (status, content_type) == (404, "application/json"), body
    value = json.loads(body)
    assert is_error(client, value), value
    message = value["error"]["message"]
    assert "route_not_found" in message, message
