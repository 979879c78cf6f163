#!/usr/bin/env python3
"""Decorators against the running demo stack (`make up`), with the official Anthropic and OpenAI SDKs.

    .venv/bin/python examples/decorators/run.py

envoy/demo.yaml has one decorator, "house-style", matching route prefix /v1/messages and model
demo-claude: it prepends a system text and appends a user text. The script shows what the
client gets and, from the fake provider's record (GET 127.0.0.1:18080/__fake/requests), what
the provider received.
"""

from __future__ import annotations

import json
import os
import urllib.request

import anthropic
import openai

GATEWAY = os.environ.get("GATEWAY", "http://127.0.0.1:10000")
FAKE = os.environ.get("FAKE_PROVIDER", "http://127.0.0.1:18080")
KEY = os.environ.get("API_KEY", "sk-demo")


def fake(method: str) -> list[dict]:
    req = urllib.request.Request(f"{FAKE}/__fake/requests", method=method)
    with urllib.request.urlopen(req, timeout=5) as r:
        body = json.loads(r.read())
    return body if isinstance(body, list) else []


def show_upstream(title: str) -> None:
    last = fake("GET")[-1]["body"]
    print(f"{title} received:")
    print(f"  system:   {json.dumps(last.get('system'))}")
    for m in last["messages"]:
        print(f"  {m['role']:9} {json.dumps(m['content'])}")
    print()


fake("DELETE")
print("# Anthropic SDK, /v1/messages, model demo-claude: the decorator applies")
claude = anthropic.Anthropic(base_url=GATEWAY, api_key=KEY, max_retries=0)
r = claude.messages.create(
    model="demo-claude", max_tokens=200,
    system="You are a helpful assistant.",
    messages=[{"role": "user", "content": "Tell me about Envoy."}],
)
print(f"reply: {r.content[0].text}")
show_upstream("the provider (Anthropic Messages API)")

print("# OpenAI SDK, /v1/chat/completions, same model: the route prefix does not match")
oa = openai.OpenAI(base_url=f"{GATEWAY}/v1", api_key=KEY, max_retries=0)
c = oa.chat.completions.create(
    model="demo-claude",
    messages=[{"role": "system", "content": "You are a helpful assistant."},
              {"role": "user", "content": "Tell me about Envoy."}],
)
print(f"reply: {c.choices[0].message.content}")
show_upstream("the provider (translated to the Anthropic Messages API)")
