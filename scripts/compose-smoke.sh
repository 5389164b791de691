#!/usr/bin/env bash
# The product's images and docker-compose.yml as an operator uses them: builds the
# connector-server image (and the Slack double's) from the Dockerfiles, brings the whole stack
# up with compose (server, PostgreSQL, a Secrets Manager emulator, the double), creates an API
# key with the image's own CLI, then lists services, creates a connector and sends through it
# with grpcurl, and tears the stack down.
#
# On a machine without a registry (the default here) the images build on the local Debian
# base with the binaries the test command already built (dist/), and the stack runs on the
# local PostgreSQL and moto test images. SC_TEST_IMAGES=official builds and runs on the
# registry's images instead.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
use_target_cache
ensure_docker
ensure_grpcurl

if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  if ! command -v docker-compose >/dev/null 2>&1; then
    [[ $EUID -eq 0 ]] || die "compose-smoke: neither 'docker compose' nor docker-compose is installed"
    log "compose-smoke: installing Debian's docker-compose (once)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
  fi
  compose=(docker-compose)
fi

build_binaries connector-server slack-double
mkdir -p dist
cp "$CARGO_TARGET_DIR/debug/connector-server" "$CARGO_TARGET_DIR/debug/slack-double" dist/

build_args=()
if [[ "${SC_TEST_IMAGES:-local}" != official ]]; then
  build_args=(--build-arg RUST_IMAGE=local/debian:bookworm
    --build-arg RUNTIME_IMAGE=slack-connector-test/runtime:bookworm)
  export SC_POSTGRES_IMAGE="$SC_TEST_PG_IMAGE" SC_SECRETS_IMAGE="$SC_TEST_SECRETS_IMAGE" SC_SECRETS_CONTAINER_PORT=5000
fi
log "compose-smoke: building the images from Dockerfile and docker/slack-double.Dockerfile"
build_log=$(mktemp)
docker build -q "${build_args[@]}" -t slack-connector:smoke . >"$build_log" 2>&1 \
  || { cat "$build_log" >&2; die "compose-smoke: building the server's image failed"; }
docker build -q "${build_args[@]}" -t slack-connector-double:smoke -f docker/slack-double.Dockerfile . \
  >"$build_log" 2>&1 || { cat "$build_log" >&2; die "compose-smoke: building the double's image failed"; }
rm -f "$build_log"
rm -rf dist
user=$(docker image inspect -f '{{.Config.User}}' slack-connector:smoke)
[[ "$user" == 65532:65532 ]] || die "compose-smoke: the image runs as '$user', not the non-root 65532"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export SC_SERVER_IMAGE=slack-connector:smoke SC_SLACK_DOUBLE_IMAGE=slack-connector-double:smoke
export SC_POSTGRES_PORT=$(free_port) SC_SECRETS_PORT=$(free_port) SC_GRPC_PORT=$(free_port) \
  SC_HTTP_PORT=$(free_port) SC_ADMIN_PORT=$(free_port) SC_SLACK_DOUBLE_PORT=$(free_port)
export SC_SLACK_API_BASE_URL=http://slack-double:8765/api/
project="scsmoke$$"
dc() { "${compose[@]}" -p "$project" --profile dev "$@"; }
fail() {
  echo "compose-smoke: $*" >&2
  dc logs --no-color --tail 50 >&2 || true
  exit 1
}
# A short stop timeout: the stack is thrown away, and the emulator does not exit on SIGTERM.
trap 'dc down -v --remove-orphans --timeout 2 >/dev/null 2>&1 || true' EXIT

log "compose-smoke: docker compose up (project $project)"
dc up -d --no-build >/dev/null 2>&1 || fail "compose up failed"
grpc="127.0.0.1:$SC_GRPC_PORT"
WAIT_SECS=90 wait_for "$GRPCURL" -plaintext "$grpc" list || fail "the server did not answer on $grpc"
services=$("$GRPCURL" -plaintext "$grpc" list)
grep -qx connector.v1.ConnectorService <<<"$services" || fail "ConnectorService not listed: $services"
http_ok "http://127.0.0.1:$SC_ADMIN_PORT/healthz" || fail "/healthz did not answer"
WAIT_SECS=30 wait_for http_ok "http://127.0.0.1:$SC_ADMIN_PORT/readyz" || fail "/readyz did not say ready"

key=$(dc run --rm --no-deps connector-server api-key create --tenant compose \
  --scope connectors:write --scope messages:send 2>/dev/null | tr -d '\r') || fail "api-key create in the image failed"
[[ "$key" == ck_* ]] || fail "api-key create printed: $key"
call() { "$GRPCURL" -plaintext -H "authorization: Bearer $key" -d "$2" "$grpc" "connector.v1.ConnectorService/$1"; }
created=$(call CreateConnector '{"name":"compose","slack_bot_token":"xoxb-compose-token","default_channel":"#alerts"}') \
  || fail "CreateConnector failed: $created"
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["connector"]["id"])' <<<"$created")
sent=$(call SendMessage "{\"connector_id\":\"$id\",\"text\":\"hello from compose\"}") || fail "SendMessage failed: $sent"
posted=$(curl -fsS "http://127.0.0.1:$SC_SLACK_DOUBLE_PORT/_double/messages")
grep -q 'hello from compose' <<<"$posted" || fail "the double did not get the message: $posted"
log "compose-smoke: passed (image user $user; create and send through the composed stack)"
