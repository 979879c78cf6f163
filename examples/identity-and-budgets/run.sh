#!/usr/bin/env bash
# Identity and budgets against the running demo stack (`make up`), with curl.
#   bash examples/identity-and-budgets/run.sh
# Consumers (envoy/demo.yaml): demo (API key sk-demo), alice (API key sk-demo-alice, 150 tokens
# a minute, models demo-gpt and demo-claude), bob (a JWT from mint_jwt.py, 1 USD a day).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
PY="${PYTHON:-$REPO/.venv/bin/python}"
GW="${GATEWAY:-http://127.0.0.1:10000}"
ADMIN="${ADMIN:-http://127.0.0.1:9901}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# POST a chat completion; prints the status, then the rate-limit headers and the body.
chat() {
    local model="$1" content="$2"
    shift 2
    local code
    code="$(curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' "$GW/v1/chat/completions" \
        -H 'content-type: application/json' "$@" \
        -d "{\"model\": \"$model\", \"max_tokens\": 50, \"messages\": [{\"role\": \"user\", \"content\": \"$content\"}]}")"
    echo "  -> $code $(grep -i -E '^(retry-after|x-ratelimit-[a-z-]+):' "$tmp/headers" | tr -d '\r' | tr '\n' ' ')"
    echo "     $(head -c 300 "$tmp/body")"
    echo
    [[ "$code" == 200 ]]
}

echo "# no credential: 401"
chat demo-gpt "hello" || true

echo "# a key nobody has: 401"
chat demo-gpt "hello" -H 'authorization: Bearer sk-not-configured' || true

echo "# consumer demo, API key sk-demo (OpenAI style; x-api-key works too)"
chat demo-gpt "hello" -H 'authorization: Bearer sk-demo'

echo "# consumer bob: a JWT signed with the demo Ed25519 key"
token="$("$PY" "$HERE/mint_jwt.py" --sub bob --ttl 600)"
echo "  token: ${token:0:40}..."
chat demo-claude "hello from bob" -H "authorization: Bearer $token"

echo "# bob with an expired token (exp 2 minutes ago, leeway 30 s): 401"
chat demo-claude "hello" -H "authorization: Bearer $("$PY" "$HERE/mint_jwt.py" --sub bob --ttl -120)" || true

echo "# a valid token for someone who is not a consumer: 401"
chat demo-claude "hello" -H "authorization: Bearer $("$PY" "$HERE/mint_jwt.py" --sub mallory)" || true

echo "# alice may not use demo-gemini: 403"
chat demo-gemini "hello" -H 'authorization: Bearer sk-demo-alice' || true

echo "# alice: 150 tokens a minute; each call spends about 45 (the fake answers 40 words)"
for i in 1 2 3 4 5 6 7 8 9 10; do
    echo "alice call $i"
    chat demo-gpt "Count to forty" -H 'authorization: Bearer sk-demo-alice' -H 'x-fake-words: 40' || break
done

echo "# spend per consumer: $ADMIN/stats/prometheus"
curl -s "$ADMIN/stats/prometheus" | grep -E '^llm_gateway_cost_usd_micros\{' | grep -v ' 0$' || echo "(no spend yet)"
