#!/usr/bin/env bash
# The hot paths as ratios to their references, measured in one run on a release build:
#   GetConnector      vs grpc.health.v1.Health/Check of the same server
#   SendMessage       vs a raw chat.postMessage to the same Slack double
# with h2load (nghttp2-client; installed when missing) at 4 connections x 16 streams, each
# figure the median of ROUNDS (3) paired runs, p50/p99 from h2load's per-request log, the
# server's peak RSS under 1,000 concurrent GetConnector streams, and a check on /metrics that
# every measured call answered OK. Prints a Markdown table; docs/performance.md keeps a run.
# Options (environment): REQUESTS (20000 per run), ROUNDS (3).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
use_target_cache
ensure_postgres
ensure_localstack
ensure_grpcurl
if ! command -v h2load >/dev/null; then
  [[ $(id -u) == 0 ]] || die "h2load missing: apt-get install nghttp2-client"
  log "h2load: installing nghttp2-client (once)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nghttp2-client >/dev/null
fi
REQUESTS="${REQUESTS:-20000}" ROUNDS="${ROUNDS:-3}"

log "building connector-server and slack-double (release)"
cargo build --release --locked -q -p connector-server -p slack-double
BIN="$CARGO_TARGET_DIR/release"

work="$(mktemp -d)"; pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

db="slack_connector_bench"
psql -q "$DATABASE_ADMIN_URL" -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
db_url="${DATABASE_ADMIN_URL%/*}/$db"
token="xoxb-bench-0000-token"
slack_port=$(free_port) grpc_port=$(free_port) http_port=$(free_port) admin_port=$(free_port)
"$BIN/slack-double" --listen "127.0.0.1:$slack_port" --token "$token" --channels alerts >"$work/double.log" 2>&1 &
pids+=($!)
CONNECTOR__DATABASE__URL="$db_url" \
CONNECTOR__AWS__ENDPOINT_URL="$AWS_ENDPOINT_URL" CONNECTOR__AWS__ACCESS_KEY_ID=test CONNECTOR__AWS__SECRET_ACCESS_KEY=test \
CONNECTOR__SECRETS__PREFIX="bench/$$/" \
CONNECTOR__SLACK__API_BASE_URL="http://127.0.0.1:$slack_port/api/" \
CONNECTOR__GRPC__LISTEN_ADDR="127.0.0.1:$grpc_port" CONNECTOR__HTTP__LISTEN_ADDR="127.0.0.1:$http_port" \
CONNECTOR__ADMIN__LISTEN_ADDR="127.0.0.1:$admin_port" \
CONNECTOR__QUOTAS__REQUESTS_PER_SECOND_PER_TENANT=0 CONNECTOR__SENDER__MAX_IN_FLIGHT_PER_CONNECTOR=1024 \
CONNECTOR__LOG__FILTER=warn \
  "$BIN/connector-server" >"$work/server.log" 2>&1 &
server=$!; pids+=("$server")
WAIT_SECS=30 wait_for http_ok "http://127.0.0.1:$admin_port/readyz" || { cat "$work/server.log"; die "the server did not become ready"; }

id=$("$GRPCURL" -plaintext -d "{\"tenant_id\":\"acme\",\"name\":\"bench\",\"slack_bot_token\":\"$token\",\"default_channel\":\"#alerts\"}" \
  "127.0.0.1:$grpc_port" connector.v1.ConnectorService/CreateConnector | python3 -c 'import json,sys; print(json.load(sys.stdin)["connector"]["id"])')

# Request bodies: gRPC frames (no compression flag, big-endian length, the protobuf message).
python3 - "$work" "$id" "$token" <<'PY'
import json, struct, sys
work, cid, token = sys.argv[1:]
def field(n, s):
    b = s.encode()
    return bytes([n << 3 | 2, len(b)]) + b
def frame(msg):
    return b"\0" + struct.pack(">I", len(msg)) + msg
open(f"{work}/health.bin", "wb").write(frame(field(1, "connector.v1.ConnectorService")))
open(f"{work}/get.bin", "wb").write(frame(field(1, "acme") + field(2, cid)))
open(f"{work}/send.bin", "wb").write(frame(field(1, "acme") + field(2, cid) + field(3, "benchmark message")))
open(f"{work}/post.json", "w").write(json.dumps({"channel": "C0000ALERTS", "text": "benchmark message"}))
PY
channel=$(curl -fsS -H "authorization: Bearer $token" "http://127.0.0.1:$slack_port/api/conversations.list" \
  | python3 -c 'import json,sys; print([c["id"] for c in json.load(sys.stdin)["channels"] if c["name"]=="alerts"][0])')
sed -i "s/C0000ALERTS/$channel/" "$work/post.json"

grpc_h=(-H 'content-type: application/grpc' -H 'te: trailers')
# run NAME URL BODY [h2load options…]: prints "req/s p50_ms p99_ms".
run() {
  local name=$1 url=$2 body=$3; shift 3
  h2load -n "$REQUESTS" -c 4 -m 16 -d "$body" --log-file "$work/$name.log" "$@" "$url" >"$work/$name.out" 2>&1 \
    || { cat "$work/$name.out" >&2; die "h2load $name failed"; }
  grep -q "succeeded, 0 failed, 0 errored" "$work/$name.out" || { cat "$work/$name.out" >&2; die "h2load $name: requests failed"; }
  local rps; rps=$(sed -n 's/^finished in .*, \([0-9.]*\) req\/s.*/\1/p' "$work/$name.out")
  local pct; pct=$(awk -F'\t' '{print $3}' "$work/$name.log" | sort -n | awk '{a[NR]=$1} END {printf "%.2f %.2f", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}')
  echo "$rps $pct"
}
g="http://127.0.0.1:$grpc_port"
declare -A results
for round in $(seq 1 "$ROUNDS"); do
  results[health]+="$(run health "$g/grpc.health.v1.Health/Check" "$work/health.bin" "${grpc_h[@]}")"$'\n'
  results[get]+="$(run get "$g/connector.v1.ConnectorService/GetConnector" "$work/get.bin" "${grpc_h[@]}")"$'\n'
  results[post]+="$(run post "http://127.0.0.1:$slack_port/api/chat.postMessage" "$work/post.json" --h1 \
    -H 'content-type: application/json' -H "authorization: Bearer $token")"$'\n'
  results[send]+="$(run send "$g/connector.v1.ConnectorService/SendMessage" "$work/send.bin" "${grpc_h[@]}")"$'\n'
  log "round $round of $ROUNDS done"
done
# The server's peak RSS while 1,000 GetConnector streams are open at once (10 x 100).
h2load -n $((REQUESTS * 2)) -c 10 -m 100 -d "$work/get.bin" "${grpc_h[@]}" "$g/connector.v1.ConnectorService/GetConnector" >"$work/rss.out" 2>&1 \
  || { cat "$work/rss.out"; die "h2load at 1,000 streams failed"; }
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
# Every measured call answered OK (h2load sees only HTTP 200; the gRPC status is in /metrics).
not_ok=$(curl -fsS "http://127.0.0.1:$admin_port/metrics" | awk '/^connector_grpc_requests_total\{/ && !/code="OK"/ {s+=$2} END {print s+0}')
[[ "$not_ok" == 0 ]] || die "$not_ok measured calls did not answer OK"

python3 - "${results[health]}" "${results[get]}" "${results[post]}" "${results[send]}" "$rss_kb" <<'PY'
import statistics, sys
rows = [[tuple(map(float, l.split())) for l in block.strip().splitlines()] for block in sys.argv[1:5]]
health, get, post, send = rows
def med(runs, i): return statistics.median(r[i] for r in runs)
def ratio(a, b): return statistics.median(x[0] / y[0] for x, y in zip(a, b))
print("| path | req/s | p50 ms | p99 ms | reference | req/s | ratio (median of paired runs) | target |")
print("|---|---|---|---|---|---|---|---|")
print(f"| GetConnector | {med(get,0):,.0f} | {med(get,1):.2f} | {med(get,2):.2f} | Health/Check | {med(health,0):,.0f} | {ratio(get, health):.2f} | ≥ 0.6, p99 ≤ 5 ms |")
print(f"| SendMessage | {med(send,0):,.0f} | {med(send,1):.2f} | {med(send,2):.2f} | raw chat.postMessage | {med(post,0):,.0f} | {ratio(send, post):.2f} | ≥ 0.35 |")
print(f"\nServer peak RSS with 1,000 concurrent GetConnector streams: {int(sys.argv[5]) / 1024:.1f} MiB (target ≤ 60 MB)")
PY
