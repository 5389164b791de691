#!/usr/bin/env bash
# Runs connector-server for local use, provisioning what is missing: PostgreSQL (a database
# named slack_connector), LocalStack for Secrets Manager, and the Slack double (unless
# CONNECTOR__SLACK__API_BASE_URL points somewhere else). Any CONNECTOR__… variable you set wins.
# Stop it with Ctrl-C.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
use_target_cache

ensure_postgres
ensure_localstack
ensure_app_database slack_connector

log "building connector-server and slack-double"
cargo build --locked -p connector-server -p slack-double -p connector-sender

export CONNECTOR__DATABASE__URL="${CONNECTOR__DATABASE__URL:-$APP_DATABASE_URL}"
export CONNECTOR__AWS__ENDPOINT_URL="${CONNECTOR__AWS__ENDPOINT_URL:-$AWS_ENDPOINT_URL}"
export CONNECTOR__GRPC__LISTEN_ADDR="${CONNECTOR__GRPC__LISTEN_ADDR:-0.0.0.0:50051}"

double_pid=""
cleanup() { [[ -n "$double_pid" ]] && kill "$double_pid" 2>/dev/null || true; }
trap cleanup EXIT

if [[ -z "${CONNECTOR__SLACK__API_BASE_URL:-}" ]]; then
  double_addr="${SLACK_DOUBLE_LISTEN:-127.0.0.1:8765}"
  if ! http_ok "http://$double_addr/_double/calls"; then
    "$CARGO_TARGET_DIR/debug/slack-double" --listen "$double_addr" \
      --token xoxb-local-dev-token --team T0LOCAL01 --channels general,alerts \
      --generated-channels 1500 >"$RUN_DIR/slack-double.log" 2>&1 &
    double_pid=$!
    WAIT_SECS=10 wait_for http_ok "http://$double_addr/_double/calls" || die "the Slack double did not start (see $RUN_DIR/slack-double.log)"
    log "Slack double on http://$double_addr/api/ (token xoxb-local-dev-token, channels #general, #alerts and 1500 more)"
  fi
  export CONNECTOR__SLACK__API_BASE_URL="http://$double_addr/api/"
fi

log "starting connector-server on $CONNECTOR__GRPC__LISTEN_ADDR (Ctrl-C stops it)"
"$CARGO_TARGET_DIR/debug/connector-server" "$@"
