#!/usr/bin/env bash
# The prompt API POST /v1/prompts/summarize against the running demo stack (`make up`).
#   bash examples/prompt-api/run.sh
# envoy/demo.yaml publishes template "summarize" (versions 1 and 2, 50/50) at that path.
set -euo pipefail
GW="${GATEWAY:-http://127.0.0.1:10000}"
KEY="${API_KEY:-sk-demo}"
TEXT="Envoy is an L7 proxy and communication bus designed for large service-oriented architectures."

echo "# the answer as JSON"
curl -s "$GW/v1/prompts/summarize" -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
    -d "{\"text\": \"$TEXT\"}"
echo; echo

echo "# streamed: one {\"delta\"} event per piece of text, then one closing event"
curl -sN "$GW/v1/prompts/summarize" -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
    -d "{\"text\": \"$TEXT\", \"style\": \"long\", \"stream\": true}"

echo "# a variable the template does not declare: 400 naming it"
curl -s -w '\n%{http_code}\n' "$GW/v1/prompts/summarize" -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d '{"txt": "typo"}'
