#!/usr/bin/env bash
# The soak (a benchmark, not a test): mixed traffic at a fixed rate against one release-built
# connector-server on PostgreSQL, LocalStack and the Slack double; prints errors, p50/p99
# latency per RPC and the server's RSS each minute. Figures go to docs/performance.md.
#
#   scripts/soak.sh                      # 10 minutes at 40 requests/s
#   SOAK_SECS=60 SOAK_RATE=100 scripts/soak.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
use_target_cache
ensure_postgres
ensure_localstack
secs=${SOAK_SECS:-600}
rate=${SOAK_RATE:-40}

cargo build --locked -q --release -p connector-server -p connector-chaos
db=slack_connector_soak
psql "$DATABASE_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
ensure_app_database "$db"
logs=$(mktemp -d /tmp/sc-soak.XXXXXX)
log "soak: ${secs} s at ${rate} requests/s (logs in $logs)"
"$CARGO_TARGET_DIR/release/connector-chaos" soak --secs "$secs" --rate "$rate" \
  --server-bin "$CARGO_TARGET_DIR/release/connector-server" --database-url "$APP_DATABASE_URL" \
  --log-dir "$logs"
