#!/usr/bin/env bash
# The chaos suite: two connector-server replicas on a private PostgreSQL cluster (which the
# suite restarts), LocalStack behind a switchable proxy and the in-process Slack double, with
# concurrent clients creating, deleting and sending while faults are injected at random.
# Afterwards it checks every promise (no orphaned secret, nothing acknowledged lost, no row
# left unfinished, no INTERNAL/UNKNOWN answer, every acknowledged message posted exactly
# once) and prints one summary line.
#
#   scripts/chaos.sh            # the short form the test command runs (about a minute)
#   scripts/chaos.sh --long     # ten minutes, more clients
#   CHAOS_SECS=120 CHAOS_CLIENTS=8 scripts/chaos.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
use_target_cache
ensure_localstack

secs=${CHAOS_SECS:-45}
clients=${CHAOS_CLIENTS:-6}
if [[ "${1:-}" == "--long" ]]; then secs=${CHAOS_SECS:-600}; clients=${CHAOS_CLIENTS:-12}; fi

build_binaries connector-server connector-chaos

# A private cluster, so restarting it disturbs nothing else on the machine.
bindir="$(dirname "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n1)")"
[[ -x "$bindir/initdb" && -x "$bindir/pg_ctl" ]] || die "chaos: initdb/pg_ctl not found (install PostgreSQL's server package)"
as_pg() { if [[ $EUID -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dir=$(mktemp -d /tmp/sc-chaos.XXXXXX)
chmod 755 "$dir"
[[ $EUID -eq 0 ]] && chown postgres:postgres "$dir"
cleanup() {
  as_pg "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  [[ "${keep_dir:-0}" == 1 ]] || rm -rf "$dir"
}
trap cleanup EXIT
as_pg "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >/dev/null
as_pg "$bindir/pg_ctl" -D "$dir/data" -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" \
  -l "$dir/postgres.log" -w start >/dev/null
url="postgres://postgres@127.0.0.1:$port/postgres"
restart="$(printf '%q ' "$bindir/pg_ctl" -D "$dir/data" -m fast -w restart)"
[[ $EUID -eq 0 ]] && restart="runuser -u postgres -- $restart"

log "chaos: ${secs} s, ${clients} clients, PostgreSQL on port $port (restarted by the suite)"
mkdir -p "$dir/logs"
if ! "$CARGO_TARGET_DIR/debug/connector-chaos" chaos --secs "$secs" --clients "$clients" \
    --server-bin "$CARGO_TARGET_DIR/debug/connector-server" --database-url "$url" \
    --pg-restart "$restart >/dev/null" --log-dir "$dir/logs"; then
  keep_dir=1
  log "chaos: FAILED; replica logs and the PostgreSQL log kept in $dir"
  exit 1
fi
