#!/usr/bin/env bash
# The whole test suite, from a fresh machine: provisions PostgreSQL, LocalStack, buf and a
# Docker engine with the test images when missing, then runs formatting, lints, proto checks
# and every test against those services.
# `.ci/run` calls exactly this.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
use_target_cache
started=$(date +%s)

ensure_buf
ensure_postgres
ensure_localstack
ensure_docker
# Containers a killed test process left behind (testcontainers removes its own on drop).
stale=$(docker ps -aq --filter label=slack-connector.test)
[[ -z "$stale" ]] || docker rm -f $stale >/dev/null

log "cargo fmt --check"
cargo fmt --all -- --check

log "hadolint: the Dockerfiles"
ensure_hadolint
"$HADOLINT" Dockerfile docker/slack-double.Dockerfile docker/test-images/*/Dockerfile

log "deploy: Kubernetes manifests, alert rules and dashboard"
bash "$ROOT/scripts/check-deploy.sh"

log "buf lint, buf format"
buf lint
buf format --diff --exit-code
buf breaking --against proto-baseline/released.json

log "dependency direction: domain, ports, usecases and instrumentation stay pure; the sender stands alone"
for pkg in connector-domain connector-ports connector-usecases connector-instrumentation; do
  deps=$(cargo tree --locked -p "$pkg" -e normal --prefix none) || die "cargo tree -p $pkg failed"
  bad=$(awk '{print $1}' <<<"$deps" | sort -u \
    | grep -E '^(tokio|tonic|prost|diesel|diesel-async|aws-.*|reqwest|hyper|axum|tower)$' || true)
  [[ -z "$bad" ]] || die "$pkg must not depend on: $bad"
done
# The sender stands alone: nothing of the server's (gRPC, HTTP serving, JWTs, telemetry
# export), and built for the embedded mode only, nothing of PostgreSQL's or AWS's.
sender_deps() {
  cargo tree --locked -p connector-sender -e normal --prefix none "$@" | awk '{print $1}' | sort -u
}
deps=$(sender_deps) || die "cargo tree -p connector-sender failed"
bad=$(grep -E '^(tonic|axum|jsonwebtoken|opentelemetry.*|tracing-opentelemetry|connector-grpc-api|connector-server|connector-adapters-jwt)$' <<<"$deps" || true)
[[ -z "$bad" ]] || die "connector-sender must not depend on: $bad"
deps=$(sender_deps --no-default-features --features embedded) || die "cargo tree -p connector-sender (embedded) failed"
bad=$(grep -E '^(aws-config|aws-sdk-.*|aws-smithy-.*|aws-runtime|tokio-postgres|connector-adapters-postgres|connector-adapters-aws)$' <<<"$deps" || true)
[[ -z "$bad" ]] || die "connector-sender --no-default-features --features embedded must not depend on: $bad"

log "codegen: build.rs and buf generate agree"
bash "$ROOT/scripts/check-codegen.sh"

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "the sender built with one backend each (its cargo features postgres and embedded)"
cargo check --locked -q -p connector-sender --no-default-features --features cli,embedded
cargo check --locked -q -p connector-sender --no-default-features --features cli,postgres

log "cargo test"
cargo test --workspace --locked
# The binaries the scripts below run, with the features `cargo test` resolved (building the
# test targets too keeps them unified, so nothing above is rebuilt): the scripts reuse them.
cargo build --locked -q --workspace --bins --tests
export SC_BINARIES_BUILT=1

log "smoke: connector-server with grpcurl and reflection"
bash "$ROOT/scripts/smoke.sh"

log "compose smoke: the product's images and docker-compose.yml"
bash "$ROOT/scripts/compose-smoke.sh"

log "chaos: replicas under faults (the short form of scripts/chaos.sh)"
bash "$ROOT/scripts/chaos.sh"

log "all checks passed in $(( $(date +%s) - started )) s"
