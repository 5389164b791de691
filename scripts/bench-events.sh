#!/usr/bin/env bash
# The inbound benchmark (not a test): signed Events API deliveries posted by concurrent
# senders to two release-built connector-server replicas on one PostgreSQL, in turn, with a
# StreamEvents stream open on each. Prints events accepted per second, the delivery's answer
# p50/p99, and send-to-stream p50/p99 on each replica's stream; fails when a stream missed or
# repeated an accepted event. Targets (issue 23): >= 1,000 events/s, stream p99 <= 100 ms.
# Figures go to docs/performance.md.
#
#   scripts/bench-events.sh                          # 20 s, 32 senders
#   BENCH_SECS=60 BENCH_SENDERS=64 scripts/bench-events.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
use_target_cache
ensure_postgres
ensure_localstack
secs=${BENCH_SECS:-20}
senders=${BENCH_SENDERS:-32}

cargo build --locked -q --release -p connector-server -p connector-chaos
db=slack_connector_bench_events
psql "$DATABASE_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
ensure_app_database "$db"
logs=$(mktemp -d /tmp/sc-bench-events.XXXXXX)
log "bench-events: ${secs} s, ${senders} senders, two replicas (logs in $logs)"
"$CARGO_TARGET_DIR/release/connector-chaos" bench-events --secs "$secs" --senders "$senders" \
  --server-bin "$CARGO_TARGET_DIR/release/connector-server" --database-url "$APP_DATABASE_URL" \
  --log-dir "$logs"
