#!/usr/bin/env bash
# Templated requests (body field llm_gateway_template) against the running demo stack (`make up`).
#   bash examples/prompt-templates/run.sh
# envoy/demo.yaml declares template "summarize" with versions 1 and 2 weighted 50/50. The fake
# provider echoes the last user turn, so each reply shows the rendered template ("Summarize: ..."
# is version 1, "TL;DR: ..." version 2); the access log line (found by the x-request-id the
# response carries) names the version as template=summarize@<version>.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG="${ENVOY_LOG:-$HERE/../../.run/envoy.log}"
GW="${GATEWAY:-http://127.0.0.1:10000}"
KEY="${API_KEY:-sk-demo}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# POST to PATH with BODY; prints the status and body, then the request's access-log line.
call() {
    local path="$1" body="$2" code id line=""
    shift 2
    code="$(curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' "$GW$path" \
        -H 'content-type: application/json' -H "authorization: Bearer $KEY" "$@" -d "$body")"
    echo "  -> $code $(head -c 400 "$tmp/body")"
    id="$(grep -i '^x-request-id:' "$tmp/headers" | tr -d '\r' | cut -d' ' -f2)"
    for _ in $(seq 30); do  # Envoy flushes the access log every 100 ms
        line="$(grep -F "request_id=$id" "$LOG" 2>/dev/null || true)"
        [[ -n "$line" ]] && break
        sleep 0.1
    done
    echo "  access log: $(grep -o 'template=[^ ]*' <<<"$line" || echo '(not found)')"
    echo
}

echo "# OpenAI dialect, version chosen by the weights (run it a few times to see both)"
for i in 1 2 3 4; do
    call /v1/chat/completions '{
      "model": "demo-gpt",
      "messages": [{"role": "user", "content": "Keep it to one line."}],
      "llm_gateway_template": {"name": "summarize", "variables": {"text": "Envoy is a proxy.", "style": "long"}}
    }'
done

echo "# Anthropic dialect, version 2 pinned"
call /v1/messages '{
  "model": "demo-gpt", "max_tokens": 200,
  "messages": [{"role": "user", "content": "Answer in French."}],
  "llm_gateway_template": {"name": "summarize", "version": "2", "variables": {"text": "Envoy is a proxy."}}
}' -H 'anthropic-version: 2023-06-01'

echo "# a variable of the wrong type: 400 naming it"
call /v1/chat/completions '{
  "model": "demo-gpt",
  "messages": [{"role": "user", "content": "hi"}],
  "llm_gateway_template": {"name": "summarize", "variables": {"text": "x", "style": "medium"}}
}'
