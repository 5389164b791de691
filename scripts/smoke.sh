#!/usr/bin/env bash
# Smoke test of the real binaries as an operator would use them: connector-server on a fresh
# database, LocalStack and the slack-double binary, driven with grpcurl through server
# reflection (grpcurl 1.8 speaks reflection v1alpha), then stopped with SIGTERM.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
use_target_cache
ensure_postgres
ensure_localstack
ensure_grpcurl
ensure_buf
ensure_dev_issuer
build_binaries connector-server slack-double connector-sender

db=slack_connector_smoke
psql "$DATABASE_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
ensure_app_database "$db"

# Configuration errors stop start-up naming the key; `migrate` applies migrations and exits.
out=$(CONNECTOR__GRPC__LISTEN_ADDR=not-an-address "$CARGO_TARGET_DIR/debug/connector-server" 2>&1) && { echo "smoke: bad config accepted" >&2; exit 1; }
grep -q 'grpc.listen_addr' <<<"$out" || { echo "smoke: config error does not name the key: $out" >&2; exit 1; }
CONNECTOR__DATABASE__URL="$APP_DATABASE_URL" "$CARGO_TARGET_DIR/debug/connector-server" migrate 2>/dev/null \
  || { echo "smoke: connector-server migrate failed" >&2; exit 1; }
psql "$APP_DATABASE_URL" -tAc "SELECT count(*) FROM connectors" | grep -qx 0 || { echo "smoke: migrate made no table" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
grpc_port=$(free_port)
double_port=$(free_port)
dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

"$CARGO_TARGET_DIR/debug/slack-double" --listen "127.0.0.1:$double_port" --token xoxb-smoke-test-token --token xoxb-smoke-replacement \
  --team T0SMOKE01 --channels general,alerts --generated-channels 1200 >"$dir/double.log" 2>&1 &
pids+=($!)

# start_server [VAR=value…]: connector-server on PostgreSQL, LocalStack and the double, on
# $grpc_port, logging JSON to $dir/server.log; sets $server_pid.
start_server() {
  env "$@" \
    CONNECTOR__DATABASE__URL="$APP_DATABASE_URL" \
    CONNECTOR__AWS__ENDPOINT_URL="$AWS_ENDPOINT_URL" \
    CONNECTOR__GRPC__LISTEN_ADDR="127.0.0.1:$grpc_port" \
    CONNECTOR__HTTP__LISTEN_ADDR="127.0.0.1:$(free_port)" \
    CONNECTOR__ADMIN__LISTEN_ADDR="127.0.0.1:$(free_port)" \
    CONNECTOR__SLACK__API_BASE_URL="http://127.0.0.1:$double_port/api/" \
    CONNECTOR__SECRETS__PREFIX="smoke/" \
    CONNECTOR__LOG__FORMAT=json \
    "$CARGO_TARGET_DIR/debug/connector-server" >"$dir/server.log" 2>&1 &
  server_pid=$!
  pids+=($server_pid)
}
start_server

call() { local method=$1 body=$2; "$GRPCURL" -plaintext -d "$body" "127.0.0.1:$grpc_port" "$method"; }
fail() { echo "smoke: $*" >&2; echo "--- server log" >&2; cat "$dir/server.log" >&2; exit 1; }
# Every check that passes is counted; the closing line says how many ran.
checks=0
ok() { checks=$((checks + 1)); }

WAIT_SECS=30 wait_for "$GRPCURL" -plaintext "127.0.0.1:$grpc_port" list && ok || fail "server did not answer"
services=$("$GRPCURL" -plaintext "127.0.0.1:$grpc_port" list)
grep -qx connector.v1.ConnectorService <<<"$services" && ok || fail "ConnectorService not listed: $services"
grep -qx grpc.health.v1.Health <<<"$services" && ok || fail "Health not listed: $services"
call grpc.health.v1.Health/Check '{"service":"connector.v1.ConnectorService"}' | grep -q SERVING && ok || fail "not SERVING"

created=$(call connector.v1.ConnectorService/CreateConnector \
  '{"tenant_id":"smoke","name":"alerts","slack_bot_token":"xoxb-smoke-test-token","default_channel":"#alerts"}') \
  && ok || fail "CreateConnector failed"
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["connector"]["id"])' <<<"$created")
grep -q '"defaultChannelId": "C0NAMED0001"' <<<"$created" && ok || fail "channel not resolved: $created"
grep -q 'xoxb' <<<"$created" && fail "the token came back in a response" || ok
call connector.v1.ConnectorService/GetConnector "{\"tenant_id\":\"smoke\",\"id\":\"$id\"}" | grep -q '"workspaceId": "T0SMOKE01"' && ok || fail "GetConnector"
sent=$(call connector.v1.ConnectorService/SendMessage "{\"tenant_id\":\"smoke\",\"connector_id\":\"$id\",\"text\":\"smoke over gRPC\"}") \
  && ok || fail "SendMessage failed"
grep -q '"channelId": "C0NAMED0001"' <<<"$sent" && ok || fail "SendMessage answered: $sent"
out=$(CONNECTOR__DATABASE__URL="$APP_DATABASE_URL" CONNECTOR__AWS__ENDPOINT_URL="$AWS_ENDPOINT_URL" \
  CONNECTOR__SECRETS__PREFIX="smoke/" CONNECTOR__SLACK__API_BASE_URL="http://127.0.0.1:$double_port/api/" \
  "$CARGO_TARGET_DIR/debug/connector-send" "$id" "smoke from the shell") && ok || fail "connector-send failed: $out"
[[ "$out" =~ ^C0NAMED0001\ [0-9]+\.[0-9]+$ ]] && ok || fail "connector-send printed: $out"
messages=$(curl -fsS "http://127.0.0.1:$double_port/_double/messages")
for text in "smoke over gRPC" "smoke from the shell"; do
  grep -q "\"$text\"" <<<"$messages" && ok || fail "the double did not receive: $text"
done
# buf curl asks reflection v1 first (grpcurl above used v1alpha).
buf curl --protocol grpc --http2-prior-knowledge -d '{"tenant_id":"smoke"}' \
  "http://127.0.0.1:$grpc_port/connector.v1.ConnectorService/ListConnectors" | grep -q "\"$id\"" && ok || fail "buf curl ListConnectors"
# UpdateConnector as the README shows it (grpcurl takes a FieldMask as an object of paths).
updated=$(call connector.v1.ConnectorService/UpdateConnector \
  "{\"tenant_id\":\"smoke\",\"id\":\"$id\",\"update_mask\":{\"paths\":[\"name\",\"default_channel\"]},\"name\":\"renamed\",\"default_channel\":\"#general\",\"etag\":\"g1\"}") \
  && ok || fail "UpdateConnector failed"
grep -q '"name": "renamed"' <<<"$updated" && grep -q '"etag": "g2"' <<<"$updated" && ok || fail "UpdateConnector answered: $updated"
out=$(call connector.v1.ConnectorService/UpdateConnector \
  "{\"tenant_id\":\"smoke\",\"id\":\"$id\",\"update_mask\":{\"paths\":[\"name\"]},\"name\":\"again\",\"etag\":\"g1\"}" 2>&1) \
  && fail "an update with a stale etag succeeded" || ok
grep -q Aborted <<<"$out" && ok || fail "expected Aborted for a stale etag: $out"
call connector.v1.ConnectorService/DeleteConnector "{\"tenant_id\":\"smoke\",\"id\":\"$id\"}" >/dev/null && ok || fail "DeleteConnector"
out=$(call connector.v1.ConnectorService/GetConnector "{\"tenant_id\":\"smoke\",\"id\":\"$id\"}" 2>&1) && fail "GetConnector after delete succeeded" || ok
grep -q NotFound <<<"$out" && ok || fail "expected NotFound after delete: $out"
# Error details come decoded: reflection serves the google.rpc types.
out=$(call connector.v1.ConnectorService/CreateConnector \
  '{"tenant_id":"smoke","name":"","slack_bot_token":"xoxb-smoke-test-token","default_channel":"#alerts"}' 2>&1) \
  && fail "an empty name was accepted" || ok
grep -q 'type.googleapis.com/google.rpc.BadRequest' <<<"$out" && ok || fail "no BadRequest detail: $out"
grep -Eq '"field": ?"name"' <<<"$out" && ok || fail "the BadRequest detail is not decoded: $out"
grep -q 'xoxb-smoke-test-token' "$dir/server.log" && fail "the token appears in the server log" || ok

kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
[[ $status -eq 0 ]] && ok || fail "server exited with $status after SIGTERM"
grep -q '"connector-server stopped"' "$dir/server.log" && ok || fail "no clean shutdown in the log"

# The same server behind JWT authentication: a local identity provider serves its JWKS and
# signs a token; grpcurl sends it as a bearer token.
issuer_port=$(free_port)
"$DEV_ISSUER_PYTHON" "$ROOT/scripts/dev-issuer.py" serve --key-file "$dir/issuer.key" --port "$issuer_port" &
pids+=($!)
WAIT_SECS=10 wait_for http_ok "http://127.0.0.1:$issuer_port/.well-known/jwks.json" && ok || fail "the dev issuer did not start"
grpc_port=$(free_port)
start_server CONNECTOR__AUTH__MODE=jwt \
  CONNECTOR__AUTH__JWKS_URL="http://127.0.0.1:$issuer_port/.well-known/jwks.json" \
  CONNECTOR__AUTH__ISSUER="http://127.0.0.1:$issuer_port" CONNECTOR__AUTH__AUDIENCE=connector-api
WAIT_SECS=30 wait_for "$GRPCURL" -plaintext "127.0.0.1:$grpc_port" list && ok || fail "JWT server did not answer"
jwt=$("$DEV_ISSUER_PYTHON" "$ROOT/scripts/dev-issuer.py" token --key-file "$dir/issuer.key" \
  --issuer "http://127.0.0.1:$issuer_port" --audience connector-api --sub smoke-ci --tenant smoke \
  --scope "connectors:read connectors:write") && ok || fail "the dev issuer signed no token"
created=$("$GRPCURL" -plaintext -H "authorization: Bearer $jwt" \
  -d '{"name":"via-jwt","slack_bot_token":"xoxb-smoke-test-token","default_channel":"#alerts"}' \
  "127.0.0.1:$grpc_port" connector.v1.ConnectorService/CreateConnector) && ok || fail "CreateConnector with a JWT failed"
grep -q '"tenantId": "smoke"' <<<"$created" && ok || fail "the tenant did not come from the token: $created"
out=$("$GRPCURL" -plaintext -H "authorization: Bearer $jwt" -d '{"connector_id":"x","text":"no"}' \
  "127.0.0.1:$grpc_port" connector.v1.ConnectorService/SendMessage 2>&1) && fail "a token without messages:send sent" || ok
grep -q PermissionDenied <<<"$out" && ok || fail "expected PermissionDenied without the scope: $out"
grep -qF "${jwt##*.}" "$dir/server.log" && fail "the token appears in the server log" || ok
grep -q '"action":"connector.create"' "$dir/server.log" && ok || fail "no audit line for the create"
kill -TERM "$server_pid"
wait "$server_pid" && ok || fail "JWT server exited with an error after SIGTERM"

# Mutual TLS: a CA issues the server's certificate and a workload's, whose URI names the
# tenant; grpcurl connects with -cacert/-cert/-key, and without a certificate is refused.
pki="$dir/pki"
mkdir -p "$pki"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "/CN=smoke CA" \
  -keyout "$pki/ca.key" -out "$pki/ca.pem" 2>/dev/null && ok || fail "openssl: CA"
leaf() { # name san
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$pki/$1.key" -out "$pki/$1.csr" 2>/dev/null \
  && openssl x509 -req -in "$pki/$1.csr" -CA "$pki/ca.pem" -CAkey "$pki/ca.key" -CAcreateserial -days 1 \
    -extfile <(printf 'subjectAltName=%s\n' "$2") -out "$pki/$1.pem" 2>/dev/null
}
leaf server 'DNS:localhost,IP:127.0.0.1' && ok || fail "openssl: server certificate"
leaf workload 'URI:spiffe://smoke.test/tenant/smoke' && ok || fail "openssl: client certificate"
grpc_port=$(free_port)
start_server CONNECTOR__AUTH__MODE=mtls CONNECTOR__AUTH__MTLS_TENANT_URI='spiffe://smoke.test/tenant/{tenant}' \
  CONNECTOR__GRPC__TLS_CERT_FILE="$pki/server.pem" CONNECTOR__GRPC__TLS_KEY_FILE="$pki/server.key" \
  CONNECTOR__GRPC__TLS_CLIENT_CA_FILE="$pki/ca.pem"
tls=(-cacert "$pki/ca.pem" -cert "$pki/workload.pem" -key "$pki/workload.key")
WAIT_SECS=30 wait_for "$GRPCURL" "${tls[@]}" "127.0.0.1:$grpc_port" list && ok || fail "mTLS server did not answer"
listed=$("$GRPCURL" "${tls[@]}" -d '{}' "127.0.0.1:$grpc_port" connector.v1.ConnectorService/ListConnectors) \
  && ok || fail "ListConnectors over mutual TLS failed"
grep -q '"tenantId": "smoke"' <<<"$listed" && ok || fail "the tenant did not come from the certificate: $listed"
"$GRPCURL" -cacert "$pki/ca.pem" -d '{}' "127.0.0.1:$grpc_port" connector.v1.ConnectorService/ListConnectors \
  >/dev/null 2>&1 && fail "a client without a certificate was served" || ok
"$GRPCURL" -plaintext -d '{}' "127.0.0.1:$grpc_port" connector.v1.ConnectorService/ListConnectors \
  >/dev/null 2>&1 && fail "a plain-text client was served" || ok
kill -TERM "$server_pid"
wait "$server_pid" && ok || fail "mTLS server exited with an error after SIGTERM"
psql "$DATABASE_ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null

# Embedded mode: no database URL, no AWS; callers authenticate with an API key; rotate the
# secret store's key while the server serves.
data="$dir/embedded"
grpc_port=$(free_port)
# Without authentication, a non-loopback address is refused, naming the settings.
out=$(CONNECTOR__DATA_DIR="$data" CONNECTOR__GRPC__LISTEN_ADDR="0.0.0.0:$grpc_port" \
  "$CARGO_TARGET_DIR/debug/connector-server" 2>&1) && fail "served 0.0.0.0 without authentication" || ok
grep -q 'CONNECTOR__AUTH__MODE' <<<"$out" && ok || fail "the refusal does not name CONNECTOR__AUTH__MODE: $out"
key=$(CONNECTOR__DATA_DIR="$data" "$CARGO_TARGET_DIR/debug/connector-server" api-key create \
  --tenant smoke --scope connectors:write --scope connectors:read --scope messages:send 2>"$dir/api-key.log") \
  && ok || { cat "$dir/api-key.log" >&2; fail "api-key create failed"; }
[[ "$key" == ck_* ]] && ok || fail "api-key create printed: $key"
call() { local method=$1 body=$2; "$GRPCURL" -plaintext -H "authorization: Bearer $key" -d "$body" "127.0.0.1:$grpc_port" "$method"; }
CONNECTOR__AUTH__MODE=api_key \
CONNECTOR__DATA_DIR="$data" CONNECTOR__GRPC__LISTEN_ADDR="127.0.0.1:$grpc_port" \
CONNECTOR__HTTP__LISTEN_ADDR="127.0.0.1:$(free_port)" CONNECTOR__ADMIN__LISTEN_ADDR="127.0.0.1:$(free_port)" \
CONNECTOR__SLACK__API_BASE_URL="http://127.0.0.1:$double_port/api/" CONNECTOR__LOG__FORMAT=json \
  "$CARGO_TARGET_DIR/debug/connector-server" >"$dir/server.log" 2>&1 &
server_pid=$!
pids+=($server_pid)
WAIT_SECS=30 wait_for "$GRPCURL" -plaintext "127.0.0.1:$grpc_port" list && ok || fail "embedded server did not answer"
"$GRPCURL" -plaintext -d '{"service":"connector.v1.ConnectorService"}' "127.0.0.1:$grpc_port" grpc.health.v1.Health/Check \
  | grep -q SERVING && ok || fail "health needs no credentials"
out=$("$GRPCURL" -plaintext -d '{}' "127.0.0.1:$grpc_port" connector.v1.ConnectorService/ListConnectors 2>&1) \
  && fail "ListConnectors without credentials succeeded" || ok
grep -q Unauthenticated <<<"$out" && ok || fail "expected Unauthenticated without credentials: $out"
# The tenant comes from the key: the request names none.
created=$(call connector.v1.ConnectorService/CreateConnector \
  '{"name":"embedded","slack_bot_token":"xoxb-smoke-test-token","default_channel":"alerts"}') \
  && ok || fail "embedded CreateConnector failed"
grep -q '"tenantId": "smoke"' <<<"$created" && ok || fail "the tenant did not come from the key: $created"
grep -qF "${key#ck_*_}" "$dir/server.log" "$dir/api-key.log" && fail "an API key's secret appears in a log" || ok
id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["connector"]["id"])' <<<"$created")
[[ -f "$data/connectors.sqlite3" && -f "$data/secrets.key" ]] && ok || fail "embedded files missing in $data"
[[ $(stat -c %a "$data/secrets.key") == 600 ]] && ok || fail "key file mode is $(stat -c %a "$data/secrets.key")"
grep -rq 'xoxb-smoke-test-token' "$data" && fail "the token is readable on disk" || ok
CONNECTOR__DATA_DIR="$data" "$CARGO_TARGET_DIR/debug/connector-server" rotate-key 2>"$dir/rotate.log" \
  && ok || { cat "$dir/rotate.log" >&2; fail "rotate-key failed"; }
out=$(CONNECTOR__DATA_DIR="$data" CONNECTOR__SLACK__API_BASE_URL="http://127.0.0.1:$double_port/api/" \
  "$CARGO_TARGET_DIR/debug/connector-send" "$id" "embedded after rotation") && ok || fail "connector-send (embedded) failed: $out"
call connector.v1.ConnectorService/SendMessage "{\"tenant_id\":\"smoke\",\"connector_id\":\"$id\",\"text\":\"embedded over gRPC\"}" >/dev/null \
  && ok || fail "embedded SendMessage after rotation failed"
# Both sends after the rotation reached Slack, with the token decrypted under the new key.
curl -fsS "http://127.0.0.1:$double_port/_double/messages" | python3 -c '
import json, sys
msgs = json.load(sys.stdin)
for text in ("embedded after rotation", "embedded over gRPC"):
    seen = [m for m in msgs if m.get("text") == text]
    assert len(seen) == 1 and seen[0].get("token") == "xoxb-smoke-test-token", (text, seen)' \
  && ok || fail "the sends after the key rotation did not reach the Slack double"
# A token replacement in the local store (staged file, then one rename).
call connector.v1.ConnectorService/UpdateConnector \
  "{\"tenant_id\":\"smoke\",\"id\":\"$id\",\"update_mask\":{\"paths\":[\"slack_bot_token\"]},\"slack_bot_token\":\"xoxb-smoke-replacement\"}" >/dev/null \
  && ok || fail "embedded UpdateConnector (token) failed"
ls "$data"/secrets/*.staged-* >/dev/null 2>&1 && fail "a staged secret file was left behind" || ok
call connector.v1.ConnectorService/SendMessage "{\"tenant_id\":\"smoke\",\"connector_id\":\"$id\",\"text\":\"embedded with the new token\"}" >/dev/null \
  && ok || fail "embedded SendMessage after the token replacement failed"
curl -fsS "http://127.0.0.1:$double_port/_double/messages" | python3 -c '
import json, sys
msgs = json.load(sys.stdin)
last = [m for m in msgs if m.get("text") == "embedded with the new token"]
assert last and last[-1].get("token") == "xoxb-smoke-replacement", last' \
  && ok || fail "the replacement token was not the one used"
grep -rq 'xoxb-smoke-replacement' "$data" && fail "the replacement token is readable on disk" || ok
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
[[ $status -eq 0 ]] && ok || fail "embedded server exited with $status after SIGTERM"
echo "smoke: $checks passed, 0 failed"
