#!/usr/bin/env bash
# Place a call over dialq's HTTP API with curl, follow it live until it connects, cancel it,
# then fetch its transcript. Needs curl and jq; no Python, no dialq code.
#
#   DIALQ_API_URL=http://127.0.0.1:8000 DIALQ_API_KEY=dq_... examples/http_call.sh +14155550123
#
# The key comes from `dialq apikey create --account default` (it is shown once). It is sent in
# a header read from stdin (-H @-), so it never appears in `ps` or the shell's trace.
set -euo pipefail

number=${1:?usage: http_call.sh PHONE_NUMBER}
api=${DIALQ_API_URL:-http://127.0.0.1:8000}
: "${DIALQ_API_KEY:?set DIALQ_API_KEY (dialq apikey create)}"

call_api() {  # METHOD PATH [curl args...]: the body; fails on an HTTP error, printing it
    local method=$1 path=$2
    shift 2
    printf 'Authorization: Bearer %s\n' "$DIALQ_API_KEY" |
        curl -sS --fail-with-body -X "$method" -H @- "$@" "$api$path"
}

# 1. Place it. The Idempotency-Key makes a retry after a timeout or a 503 safe: same key,
#    same call (200 instead of 201).
body=$(jq -n --arg number "$number" '{phone_number: $number, session_name: "curl example"}')
call_id=$(call_api POST /v1/calls -H 'Content-Type: application/json' \
    -H "Idempotency-Key: curl-$(date +%s)-$$" -d "$body" | jq -r .id)
echo "placed $call_id"

# 2. Follow its events (Server-Sent Events) until it is connected.
exec 3< <(printf 'Authorization: Bearer %s\n' "$DIALQ_API_KEY" |
    curl -sSN -H @- -H 'Accept: text/event-stream' "$api/v1/calls/$call_id/events")
follower=$!
while IFS= read -r line <&3; do
    case $line in
        "event: "*) echo "event ${line#event: }" ;;
    esac
    case $line in
        "event: connected"* ) break ;;
        "event: failed"* | "event: canceled"* | "event: unknown"*)
            echo "never connected" >&2
            exit 1
            ;;
    esac
done
kill "$follower" 2>/dev/null || true
exec 3<&-

# 3. Cancel it: a live call is stopped at Symbl.
call_api POST "/v1/calls/$call_id/cancel" | jq -r '"cancel: \(.status) (\(.message))"'

# 4. Its transcript comes once its insights are harvested: 409 until then, so wait and retry.
for _ in $(seq 1 60); do
    status=$(printf 'Authorization: Bearer %s\n' "$DIALQ_API_KEY" |
        curl -sS -o /tmp/dialq-transcript.$$ -w '%{http_code}' -H @- \
            "$api/v1/calls/$call_id/transcript?format=text")
    if [ "$status" = 200 ]; then
        echo "transcript:"
        cat /tmp/dialq-transcript.$$
        rm -f /tmp/dialq-transcript.$$
        exit 0
    fi
    if [ "$status" != 409 ]; then
        echo "no transcript ($status):" >&2
        cat /tmp/dialq-transcript.$$ >&2
        rm -f /tmp/dialq-transcript.$$
        exit 1
    fi
    sleep 1
done
echo "no transcript yet; try later: GET /v1/calls/$call_id/transcript" >&2
exit 1
