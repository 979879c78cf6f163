"""`make demo` end to end: the demo stack started by scripts/up.sh (envoy/demo.yaml), the tour
(integration/tour.py) and every example script, against the build under test (LLM_GATEWAY_WASM is
passed on to scripts/up.sh).

The stack runs on free ports with its own run directory and base id (scripts/up.sh renders
demo.yaml for them), so a demo left running by `make demo` on 10000/18080/9901 is not touched;
it is always stopped with scripts/down.sh.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import harness

REPO_ROOT = harness.REPO_ROOT
DEFAULT_WASM = REPO_ROOT / "target" / "wasm32-wasip1" / "release" / "llm_gateway.wasm"
def _run(args: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _output(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"


@pytest.fixture(scope="module")
def demo(wasm_path, tmp_path_factory):
    """Starts the demo stack as `make demo` does, on free ports; yields the environment for
    the tour and the example scripts (GATEWAY, ADMIN, FAKE_PROVIDER, ENVOY_LOG)."""
    run_dir = tmp_path_factory.mktemp("demo-run")
    listen, fake, admin = harness.free_port(), harness.free_port(), harness.free_port()
    env = dict(os.environ, DEMO_RUN_DIR=str(run_dir), DEMO_LISTEN_PORT=str(listen), DEMO_FAKE_PORT=str(fake),
               DEMO_ADMIN_PORT=str(admin), DEMO_BASE_ID=str(harness.next_base_id()),
               GATEWAY=f"http://127.0.0.1:{listen}", ADMIN=f"http://127.0.0.1:{admin}",
               FAKE_PROVIDER=f"http://127.0.0.1:{fake}", ENVOY_LOG=str(run_dir / "envoy.log"))
    if wasm_path.resolve() == DEFAULT_WASM.resolve():
        env.pop("LLM_GATEWAY_WASM", None)  # exactly what `make demo` runs
    else:
        env["LLM_GATEWAY_WASM"] = str(wasm_path.resolve())
    try:
        up = _run(["bash", "scripts/up.sh"], env, timeout=120)
        assert up.returncode == 0, f"scripts/up.sh failed:\n{_output(up)}"
        yield env
    finally:
        down = _run(["bash", "scripts/down.sh"], env, timeout=60)
        print(down.stdout, down.stderr)


@pytest.fixture(scope="module")
def tour(demo) -> str:
    proc = _run([sys.executable, "integration/tour.py"], demo, timeout=240)
    if proc.returncode != 0:
        log = harness.tail(demo["ENVOY_LOG"], 40)
        pytest.fail(f"integration/tour.py failed:\n{_output(proc)}\n--- envoy.log ---\n{log}", pytrace=False)
    return proc.stdout


def section(text: str, title_start: str) -> str:
    """The lines of the tour section whose heading starts with `title_start`."""
    parts = re.split(r"^== ", text, flags=re.M)
    found = [p for p in parts if p.startswith(title_start)]
    assert found, f"the tour has no section '== {title_start}...':\n{text}"
    return found[0]


def test_tour_ends_ok(tour):
    assert tour.rstrip().endswith("tour: ok")


def test_no_credential_is_401(tour):
    assert re.search(r"^no credential -> 401 invalid_api_key: ", tour, re.M), section(tour, "identity")


def test_bob_calls_with_a_minted_jwt(tour):
    text = section(tour, "bob")
    assert re.search(r"^bob -> demo-claude 200 'echo: .*consumer=bob cost_usd_micros=[1-9]\d*\)$", text, re.M), text
    assert re.search(r"^bob, expired token -> 401 .*expired", text, re.M), text


def test_alice_reaches_429_with_rate_limit_headers(tour):
    text = section(tour, "alice")
    assert re.search(r"-> 403 model_not_allowed", text), text
    line = re.search(r"^alice call \d+: 429 .*$", text, re.M)
    assert line, text
    for header in (r"retry-after=\d+", r"x-ratelimit-limit-tokens=150", r"x-ratelimit-remaining-tokens=\d+",
                   r"x-ratelimit-reset-tokens=\d+(m\d+)?s"):
        assert re.search(header, line.group(0)), f"{header} missing in: {line.group(0)}"
    assert "Rate limit reached for limit 'tpm'" in text


def test_prompt_api_answers_and_streams(tour):
    text = section(tour, "prompt API: POST")
    assert re.search(r"^output: echo: (Summarize|TL;DR): Envoy is an L7 proxy", text, re.M), text
    assert re.search(r"^template: summarize version: [12] stop_reason: stop usage: \{\"input_tokens\": \d+", text, re.M)
    streamed = section(tour, "prompt API, streamed")
    assert re.search(r"^output: echo: (Summarize|TL;DR): Envoy is an L7 proxy", streamed, re.M), streamed
    assert '"output_done": true' in streamed and '"template": "summarize"' in streamed, streamed


def test_templated_chat_reports_the_version_used(tour):
    text = section(tour, "templated chat requests")
    rows = re.findall(r"^request \d+: template=(\S+) reply='echo: (\S+)", text, re.M)
    assert len(rows) >= 4, text
    for used, first_word in rows:
        # The fake echoes the rendered template: version 1 says "Summarize:", version 2 "TL;DR:".
        assert (used, first_word) in {("summarize@1", "Summarize:"), ("summarize@2", "TL;DR:")}, text


def test_spend_per_consumer_from_prometheus(tour):
    text = section(tour, "spend per consumer")
    for consumer in ("demo", "alice", "bob"):
        assert re.search(rf'^llm_gateway_cost_usd_micros\{{.*llm_consumer="{consumer}".*\}} [1-9]\d*$', text, re.M), text
        assert re.search(rf"^{consumer} +[1-9]\d* +[1-9]\d* +[1-9]\d*$", text, re.M), text
    assert re.search(r'^gen_ai_server_requests\{.*http_status_code="429",llm_consumer="alice"', tour, re.M) or \
        re.search(r'^gen_ai_server_requests\{.*llm_consumer="alice".*http_status_code="429"', tour, re.M), tour


# ------------------------------------------------------------------ examples/*/run.*

EXAMPLES = {
    "identity-and-budgets": (["bash", "examples/identity-and-budgets/run.sh"],
                             ["-> 401", "-> 403", "-> 429", "retry-after:", 'llm_consumer="bob"',
                              "echo: hello from bob", "token has expired", 'Consumer \\"mallory\\"']),
    "prompt-api": (["bash", "examples/prompt-api/run.sh"],
                   ['"output":"echo: ', '"output_done":true', '"code":"unknown_variable"']),
    "prompt-templates": (["bash", "examples/prompt-templates/run.sh"],
                         ["access log: template=summarize@", "echo: TL;DR: Envoy is a proxy. Answer in French.",
                          '"code":"invalid_variable"']),
    "decorators": ([sys.executable, "examples/decorators/run.py"],
                   ["reply: echo: Tell me about Envoy. Answer in at most three sentences.",
                    "You work for ACME. Never mention competitors."]),
    "guards": (["bash", "examples/guards/run.sh"],
               ['guard rule \\"secrets\\"', 'guard rule \\"jailbreak\\"',
                "echo: Refund order 1234 to [EMAIL], card [CREDIT_CARD], employee [EMPLOYEE], key [KEY]"]),
}


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_runs_as_written(name, demo, tour):
    # `tour` first: alice's budget is then already spent this minute, which the script must handle.
    args, expected = EXAMPLES[name]
    proc = _run(args, demo, timeout=120)
    assert proc.returncode == 0, _output(proc)
    missing = [e for e in expected if e not in proc.stdout]
    assert not missing, f"examples/{name}: missing {missing}\n{_output(proc)}"
