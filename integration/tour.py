#!/usr/bin/env python3
"""A short tour of the running demo stack (scripts/up.sh), with the official SDKs.

    .venv/bin/python integration/tour.py        (or: make demo)

Identity first (no key: 401), then as consumer `demo` (API key sk-demo): one chat completion,
one streamed completion with usage, one stream translated from the Anthropic Messages API to
Gemini, every demo model once through Chat Completions and once through the Responses API
(create and stream). Then consumer `bob` with a JWT minted by
examples/identity-and-budgets/mint_jwt.py, consumer `alice` running into her 150 tokens per
minute (429 with Retry-After and x-ratelimit-* headers), the prompt API
POST /v1/prompts/summarize (normal and streamed), templated chat requests showing which
template version the gateway picked, the Prometheus metrics with spend per consumer, and the
last access-log lines.

Exits 1 if any step did not answer as documented (the rest of the tour still runs).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from anthropic import Anthropic
from openai import OpenAI

REPO_ROOT = Path(__file__).resolve().parent.parent
# The demo stack's addresses; integration/test_demo.py points the tour at a stack on free ports.
ENVOY_LOG = Path(os.environ.get("ENVOY_LOG") or REPO_ROOT / ".run" / "envoy.log")
MINT_JWT = REPO_ROOT / "examples" / "identity-and-budgets" / "mint_jwt.py"
GATEWAY = os.environ.get("GATEWAY", "http://127.0.0.1:10000")
ADMIN = os.environ.get("ADMIN", "http://127.0.0.1:9901")
DEMO_KEY = "sk-demo"
ALICE_KEY = "sk-demo-alice"

failures: list[str] = []


def heading(title: str) -> None:
    print(f"\n== {title}", flush=True)


def check(ok: bool, what: str) -> bool:
    if not ok:
        failures.append(what)
        print(f"!! unexpected: {what}", flush=True)
    return ok


def access_log_lines() -> list[str]:
    try:
        text = ENVOY_LOG.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [l for l in text.splitlines() if " model=" in l and " duration=" in l]


def access_log_line(request_id: str | None, timeout: float = 3.0) -> str | None:
    """The access-log line of the request Envoy answered with this x-request-id (demo.yaml sets
    always_set_request_id_in_response and logs request_id=...). Envoy writes the line when the
    request ends and flushes the file every 100 ms."""
    if not request_id:
        return None
    deadline = time.monotonic() + timeout
    while True:
        for line in reversed(access_log_lines()):
            if line.endswith(f" request_id={request_id}"):
                return line
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def log_field(line: str | None, name: str) -> str:
    m = re.search(rf" {name}=(\S+)", line or "")
    return m.group(1) if m else "?"


def post(path: str, body: dict, headers: dict | None = None, timeout: float = 30):
    """POST JSON with the standard library: (status, headers, body bytes), errors included."""
    req = urllib.request.Request(
        GATEWAY + path, data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def error_text(body: bytes) -> str:
    try:
        err = json.loads(body)["error"]
        return f"{err.get('code') or err.get('type')}: {err.get('message')}"
    except (ValueError, KeyError, TypeError):
        return body.decode(errors="replace")[:200]


def mint_jwt(*args: str) -> str:
    out = subprocess.run([sys.executable, str(MINT_JWT), *args], check=True, capture_output=True, text=True)
    return out.stdout.strip()


def prometheus() -> list[str]:
    with urllib.request.urlopen(f"{ADMIN}/stats/prometheus", timeout=5) as r:
        return r.read().decode().splitlines()


def labels(line: str) -> dict[str, str]:
    return dict(re.findall(r'(\w+)="([^"]*)"', line))


def value(line: str) -> int:
    return int(float(line.rsplit(" ", 1)[1]))


def main() -> int:
    messages = [{"role": "user", "content": "Say hello to the gateway"}]

    heading("identity: a request without a credential")
    status, _, body = post("/v1/chat/completions", {"model": "demo-gpt", "messages": messages})
    print(f"no credential -> {status} {error_text(body)}")
    check(status == 401, f"no credential answered {status}, expected 401")

    client = OpenAI(base_url=f"{GATEWAY}/v1", api_key=DEMO_KEY, max_retries=0)
    logged_before = len(access_log_lines())

    heading(f"chat completion (model demo-gpt, consumer demo, API key {DEMO_KEY})")
    resp = client.chat.completions.create(model="demo-gpt", messages=messages)
    print(f"reply: {resp.choices[0].message.content}")
    print(f"model: {resp.model}")
    if resp.usage:
        print(f"usage: prompt={resp.usage.prompt_tokens} completion="
              f"{resp.usage.completion_tokens} total={resp.usage.total_tokens}")

    heading("streaming completion with stream_options.include_usage")
    stream = client.chat.completions.create(
        model="demo-gpt", messages=messages, stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    print("reply: ", end="", flush=True)
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
        if chunk.usage:
            usage = chunk.usage
    print()
    if usage:
        print(f"usage: prompt={usage.prompt_tokens} completion={usage.completion_tokens} "
              f"total={usage.total_tokens}")
    else:
        print("usage: (none in the stream)")

    heading("translated stream: Anthropic SDK (/v1/messages) -> demo-gemini (Gemini streamGenerateContent)")
    claude = Anthropic(base_url=GATEWAY, api_key=DEMO_KEY, max_retries=0)
    print("reply: ", end="", flush=True)
    with claude.messages.stream(model="demo-gemini", max_tokens=200, messages=messages) as s:
        for text in s.text_stream:
            print(text, end="", flush=True)
        final = s.get_final_message()
    print()
    print(f"usage: input={final.usage.input_tokens} output={final.usage.output_tokens} "
          f"stop_reason={final.stop_reason}")

    heading("every demo model through the OpenAI SDK")
    for model in ("demo-gpt", "demo-azure", "demo-claude", "demo-gemini", "demo-bedrock", "demo-mistral"):
        r = client.chat.completions.create(model=model, messages=messages)
        print(f"{model:13} -> {r.model:45} {r.choices[0].message.content!r} "
              f"(usage {r.usage.prompt_tokens}+{r.usage.completion_tokens})")

    heading("every demo model through the Responses API (responses.create, then responses.stream)")
    for model in ("demo-gpt", "demo-azure", "demo-claude", "demo-gemini", "demo-bedrock", "demo-mistral"):
        r = client.responses.create(model=model, input="Say hello to the gateway", store=False)
        with client.responses.stream(model=model, input="Say hello to the gateway") as s:
            streamed = s.get_final_response()
        print(f"{model:13} -> {r.status} {r.output_text!r} (usage {r.usage.input_tokens}+{r.usage.output_tokens}); "
              f"streamed {streamed.status} {streamed.output_text!r}")
        check(r.status == streamed.status == "completed" and r.output_text == streamed.output_text,
              f"{model} through the Responses API: {r.status}/{streamed.status}")

    heading("bob: a JWT (EdDSA, demo key) from examples/identity-and-budgets/mint_jwt.py, budget 1 USD a day")
    token = mint_jwt("--sub", "bob", "--ttl", "600")
    print(f"token: {token[:40]}...{token[-12:]}")
    bob = OpenAI(base_url=f"{GATEWAY}/v1", api_key=token, max_retries=0)
    raw = bob.chat.completions.with_raw_response.create(model="demo-claude", messages=messages)
    r = raw.parse()
    line = access_log_line(raw.headers.get("x-request-id"))
    print(f"bob -> demo-claude 200 {r.choices[0].message.content!r} "
          f"(usage {r.usage.prompt_tokens}+{r.usage.completion_tokens}, "
          f"consumer={log_field(line, 'consumer')} cost_usd_micros={log_field(line, 'cost_usd_micros')})")
    check(log_field(line, "consumer") == "bob", "bob's request was not logged as consumer=bob")
    expired = mint_jwt("--sub", "bob", "--ttl", "-120")
    status, _, body = post("/v1/chat/completions", {"model": "demo-claude", "messages": messages},
                           {"authorization": f"Bearer {expired}"})
    print(f"bob, expired token -> {status} {error_text(body)}")
    check(status == 401, f"an expired token answered {status}, expected 401")

    heading(f"alice: API key {ALICE_KEY}, 150 tokens a minute (max_tokens 50; the fake answers 40 words: x-fake-words)")
    status, _, body = post("/v1/chat/completions", {"model": "demo-gemini", "messages": messages},
                           {"authorization": f"Bearer {ALICE_KEY}"})
    print(f"alice -> demo-gemini (not in her models) -> {status} {error_text(body)}")
    check(status == 403, f"a model outside alice's list answered {status}, expected 403")
    got_429 = False
    for call in range(1, 16):
        status, headers, body = post(
            "/v1/chat/completions",
            {"model": "demo-gpt", "messages": [{"role": "user", "content": "Count to forty"}], "max_tokens": 50},
            {"authorization": f"Bearer {ALICE_KEY}", "x-fake-words": "40"},
        )
        shown = {k: v for k, v in headers.items() if k.lower() == "retry-after" or k.lower().startswith("x-ratelimit-")}
        print(f"alice call {call}: {status} " + " ".join(f"{k.lower()}={v}" for k, v in shown.items()))
        if status == 429:
            print(f"  {error_text(body)}")
            check("retry-after" in {k.lower() for k in headers}, "the 429 has no retry-after header")
            got_429 = True
            break
        if not check(status == 200, f"alice call {call} answered {status}: {error_text(body)}"):
            break
    check(got_429, "alice never reached her budget (no 429)")

    heading("prompt API: POST /v1/prompts/summarize {\"text\": ...}")
    text = "Envoy is an L7 proxy and communication bus designed for large service-oriented architectures."
    status, _, body = post("/v1/prompts/summarize", {"text": text}, {"authorization": f"Bearer {DEMO_KEY}"})
    if check(status == 200, f"the prompt API answered {status}: {error_text(body)}"):
        answer = json.loads(body)
        print(f"output: {answer.get('output')}")
        print(f"template: {answer.get('template')} version: {answer.get('version')} "
              f"stop_reason: {answer.get('stop_reason')} usage: {json.dumps(answer.get('usage'))}")
        check(isinstance(answer.get("output"), str) and answer.get("version") in ("1", "2"),
              f"unexpected prompt API answer {answer}")

    heading("prompt API, streamed: {\"text\": ..., \"style\": \"long\", \"stream\": true}")
    req = urllib.request.Request(
        f"{GATEWAY}/v1/prompts/summarize", method="POST",
        data=json.dumps({"text": text, "style": "long", "stream": True}).encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {DEMO_KEY}"},
    )
    closing = None
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            print("output: ", end="", flush=True)
            for raw in r:
                if not raw.startswith(b"data: "):
                    continue
                event = json.loads(raw[6:])
                if "delta" in event:
                    print(event["delta"], end="", flush=True)
                else:
                    closing = event
            print()
        print(f"closing event: {json.dumps(closing)}")
        check(bool(closing and closing.get("output_done")), f"the stream did not end with output_done: {closing}")
    except urllib.error.HTTPError as err:
        check(False, f"the streamed prompt API answered {err.code}: {error_text(err.read())}")

    heading("templated chat requests: llm_gateway_template summarize, versions 1 and 2 weighted 50/50")
    seen: set[str] = set()
    for call in range(1, 11):
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="demo-gpt",
                messages=[{"role": "user", "content": "Plain text, please."}],
                extra_body={"llm_gateway_template": {"name": "summarize", "variables": {"text": "Envoy is a proxy."}}},
            )
        except Exception as err:  # noqa: BLE001 - report and go on with the tour
            check(False, f"the templated request failed: {err}")
            break
        r = raw.parse()
        used = log_field(access_log_line(raw.headers.get("x-request-id")), "template")
        seen.add(used)
        print(f"request {call}: template={used} reply={r.choices[0].message.content!r}")
        if call >= 4 and {"summarize@1", "summarize@2"} <= seen:
            break
    check(any(s.startswith("summarize@") for s in seen), f"no access-log line named the template version ({seen})")

    heading(f"metrics: {ADMIN}/stats/prometheus")
    # Histograms show after the next stats flush (stats_flush_interval: 1s in demo.yaml).
    deadline = time.monotonic() + 3
    while True:
        lines = [l for l in prometheus() if l.startswith(("gen_ai_", "llm_gateway_"))]
        counts = [l for l in lines if l.startswith("gen_ai_") and "_count{" in l]
        if time.monotonic() >= deadline or (counts and all(not l.endswith(" 0") for l in counts)):
            break
        time.sleep(0.2)
    buckets = [l for l in lines if "_bucket{" in l or "_sum{" in l]
    requests = [l for l in lines if l.startswith("gen_ai_server_requests{") and not l.endswith(" 0")]
    print("\n".join(requests) if requests else "(no gen_ai_server_requests yet)")
    if buckets:
        print(f"(plus {len(buckets)} histogram lines: request duration, token usage, time to first token)")

    heading("spend per consumer (labels llm_consumer): llm_gateway_cost_usd_micros, gen_ai_client_token_count")
    costs = [l for l in lines if l.startswith("llm_gateway_cost_usd_micros{") and not l.endswith(" 0")]
    print("\n".join(costs) if costs else "(no llm_gateway_cost_usd_micros yet)")
    spend: dict[str, dict[str, int]] = {}
    for l in lines:
        if l.startswith("gen_ai_client_token_count{"):
            lab = labels(l)
            row = spend.setdefault(lab.get("llm_consumer", "none"), {"input": 0, "output": 0, "cost": 0})
            if lab.get("gen_ai_token_type") in ("input", "output"):
                row[lab["gen_ai_token_type"]] += value(l)
        elif l.startswith("llm_gateway_cost_usd_micros{"):
            lab = labels(l)
            spend.setdefault(lab.get("llm_consumer", "none"), {"input": 0, "output": 0, "cost": 0})["cost"] += value(l)
    print(f"{'consumer':10} {'input tokens':>12} {'output tokens':>13} {'cost (micro-USD)':>16}")
    for name, row in sorted(spend.items()):
        print(f"{name:10} {row['input']:>12} {row['output']:>13} {row['cost']:>16}")
    check({"demo", "alice", "bob"} <= set(spend), f"spend is missing a consumer: {sorted(spend)}")

    heading("access log (last 4 lines of .run/envoy.log)")
    deadline = time.monotonic() + 3
    logged = access_log_lines()
    while len(logged) < logged_before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        logged = access_log_lines()
    print("\n".join(logged[-4:]) if logged else "(no access log lines)")

    if failures:
        print(f"\n{len(failures)} step(s) did not answer as documented:")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("\ntour: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
