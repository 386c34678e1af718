#!/usr/bin/env bash
# Post a standard example event to a running ingress (`make run`), signed now with the dev secrets.
# Usage: examples/standard_curl.sh [BODY_FILE]   (PAYSTREAM_INGRESS_URL, PAYSTREAM_DATA_DIR as for `paystream dev`)
# Posting the same file twice is fine: the second delivery is accepted and dropped downstream as a duplicate.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
url=${PAYSTREAM_INGRESS_URL:-http://127.0.0.1:8080}
body=${1:-$here/payloads/standard_invoice.paid.json}
paystream=${PAYSTREAM_BIN:-$root/.venv/bin/paystream}
headers=()
while IFS= read -r line; do headers+=(-H "$line"); done < <("$paystream" sign --provider standard "$body")
curl -sS --fail-with-body -X POST "$url/webhooks/standard/${PAYSTREAM_STANDARD_SOURCE:-demo}" -H 'Content-Type: application/json' "${headers[@]}" \
  --data-binary "@$body"
echo
