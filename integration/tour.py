#!/usr/bin/env python3
"""A short tour of the running demo stack (scripts/up.sh), with the official OpenAI SDK.

    .venv/bin/python integration/tour.py        (or: make demo)

One chat completion, one streamed completion with usage, one stream translated from the
Anthropic Messages API to Gemini, every demo model once, the gateway's Prometheus metrics,
and the last access-log lines.
"""

from __future__ import annotations

import sys
import time
import urllib.request
from pathlib import Path

from anthropic import Anthropic
from openai import OpenAI

REPO_ROOT = Path(__file__).resolve().parent.parent
ENVOY_LOG = REPO_ROOT / ".run" / "envoy.log"
ADMIN = "http://127.0.0.1:9901"


def heading(title: str) -> None:
    print(f"\n== {title}")


def access_log_lines() -> list[str]:
    try:
        text = ENVOY_LOG.read_text(errors="replace")
    except FileNotFoundError:
        return []
    return [l for l in text.splitlines() if " model=" in l and " duration=" in l]


def main() -> int:
    client = OpenAI(base_url="http://127.0.0.1:10000/v1", api_key="sk-demo", max_retries=0)
    logged_before = len(access_log_lines())
    messages = [{"role": "user", "content": "Say hello to the gateway"}]

    heading("chat completion (model demo-gpt)")
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
    claude = Anthropic(base_url="http://127.0.0.1:10000", api_key="sk-demo", max_retries=0)
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

    heading(f"metrics: {ADMIN}/stats/prometheus | grep ^gen_ai_")
    # Histograms show after the next stats flush (stats_flush_interval: 1s in demo.yaml).
    deadline = time.monotonic() + 3
    while True:
        with urllib.request.urlopen(f"{ADMIN}/stats/prometheus", timeout=5) as r:
            lines = [l for l in r.read().decode().splitlines() if l.startswith("gen_ai_")]
        counts = [l for l in lines if "_count{" in l]
        if time.monotonic() >= deadline or (counts and all(not l.endswith(" 0") for l in counts)):
            break
        time.sleep(0.2)
    buckets = [l for l in lines if "_bucket{" in l or "_sum{" in l]
    shown = [l for l in lines if l.startswith(("gen_ai_server_requests{", "gen_ai_client_token_count{"))
             and not l.endswith(" 0")]
    print("\n".join(shown) if shown else "(no gen_ai_ metrics yet)")
    if buckets:
        print(f"(plus {len(buckets)} histogram lines: request duration, token usage, time to first token)")

    heading("access log (last 2 lines of .run/envoy.log)")
    deadline = time.monotonic() + 3
    logged = access_log_lines()
    while len(logged) < logged_before + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
        logged = access_log_lines()
    print("\n".join(logged[-2:]) if logged else "(no access log lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
