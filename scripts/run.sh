#!/usr/bin/env bash
# Runs connector-server for local use.
#
#   scripts/run.sh              embedded mode: nothing else to install. Connectors in SQLite and
#                               tokens encrypted on disk under CONNECTOR__DATA_DIR (default
#                               ~/.local/share/slack-connector).
#   scripts/run.sh --postgres   PostgreSQL (a database named slack_connector) and Secrets Manager
#                               through LocalStack, each provisioned when missing.
#
# Both point the server at the Slack double (127.0.0.1:8765) unless CONNECTOR__SLACK__API_BASE_URL
# says otherwise. Any CONNECTOR__… variable you set wins. Ctrl-C stops it.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
use_target_cache

mode=embedded
server_args=()
for arg in "$@"; do
  case "$arg" in
    --postgres) mode=postgres ;;
    *) server_args+=("$arg") ;;
  esac
done

log "building connector-server, connector-send and slack-double"
build_run_binaries

env_file="$RUN_DIR/run.env"
: >"$env_file"
remember() { export "$1=$2"; printf 'export %s=%q\n' "$1" "$2" >>"$env_file"; }

if [[ $mode == postgres ]]; then
  ensure_postgres
  ensure_localstack
  ensure_app_database slack_connector
  remember CONNECTOR__DATABASE__URL "${CONNECTOR__DATABASE__URL:-$APP_DATABASE_URL}"
  remember CONNECTOR__AWS__ENDPOINT_URL "${CONNECTOR__AWS__ENDPOINT_URL:-$AWS_ENDPOINT_URL}"
  remember AWS_ACCESS_KEY_ID "$AWS_ACCESS_KEY_ID"
  remember AWS_SECRET_ACCESS_KEY "$AWS_SECRET_ACCESS_KEY"
else
  [[ -n "${CONNECTOR__DATA_DIR:-}" ]] && remember CONNECTOR__DATA_DIR "$CONNECTOR__DATA_DIR"
  log "embedded mode: no PostgreSQL or AWS needed; the server logs where its data and key live"
fi
remember CONNECTOR__GRPC__LISTEN_ADDR "${CONNECTOR__GRPC__LISTEN_ADDR:-127.0.0.1:50051}"

double_pid=""
cleanup() { [[ -n "$double_pid" ]] && kill "$double_pid" 2>/dev/null || true; }
trap cleanup EXIT

if [[ -z "${CONNECTOR__SLACK__API_BASE_URL:-}" ]]; then
  double_addr="${SLACK_DOUBLE_LISTEN:-127.0.0.1:8765}"
  http_addr="${CONNECTOR__HTTP__LISTEN_ADDR:-127.0.0.1:8080}"
  signing_secret="${CONNECTOR__SLACK__SIGNING_SECRET:-local-dev-signing-secret}"
  if ! http_ok "http://$double_addr/_double/calls"; then
    # The double also delivers Slack's events (POST /_double/events) to this server, signed.
    "$CARGO_TARGET_DIR/debug/slack-double" --listen "$double_addr" \
      --token xoxb-local-dev-token --team T0LOCAL01 --channels general,alerts \
      --generated-channels 1500 --events-url "http://127.0.0.1:${http_addr##*:}/slack/events" \
      --signing-secret "$signing_secret" >"$RUN_DIR/slack-double.log" 2>&1 &
    double_pid=$!
    WAIT_SECS=10 wait_for http_ok "http://$double_addr/_double/calls" || die "the Slack double did not start (see $RUN_DIR/slack-double.log)"
    log "Slack double on http://$double_addr/api/ (token xoxb-local-dev-token, channels #general, #alerts and 1500 more)"
  fi
  remember CONNECTOR__SLACK__API_BASE_URL "http://$double_addr/api/"
  remember CONNECTOR__SLACK__SIGNING_SECRET "$signing_secret"
  # The double also plays Slack's OAuth pages, so GetOAuthV2URL works locally.
  remember CONNECTOR__SLACK__AUTHORIZE_URL "${CONNECTOR__SLACK__AUTHORIZE_URL:-http://$double_addr/oauth/v2/authorize}"
  remember CONNECTOR__SLACK__CLIENT_ID "${CONNECTOR__SLACK__CLIENT_ID:-local-client-id}"
  remember CONNECTOR__SLACK__CLIENT_SECRET "${CONNECTOR__SLACK__CLIENT_SECRET:-local-client-secret}"
  remember CONNECTOR__SLACK__REDIRECT_URL "${CONNECTOR__SLACK__REDIRECT_URL:-http://127.0.0.1:${http_addr##*:}/slack/oauth/callback}"
else
  remember CONNECTOR__SLACK__API_BASE_URL "$CONNECTOR__SLACK__API_BASE_URL"
fi

log "starting connector-server ($mode mode) on $CONNECTOR__GRPC__LISTEN_ADDR (Ctrl-C stops it)"
"$CARGO_TARGET_DIR/debug/connector-server" "${server_args[@]}"
