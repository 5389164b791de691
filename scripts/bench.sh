#!/usr/bin/env bash
# The benchmarks, on optimised builds, with PostgreSQL and LocalStack provisioned as for the
# tests. Figures go to stdout; docs/performance.md records a run.
#   1. scripts/bench-grpc.sh: GetConnector and SendMessage against their references (h2load).
#   2. the sender benchmark (crates/sender/benches/throughput.rs): a warm Sender vs raw posts.
#   3. what metrics and spans add to a call (bins/server/benches/telemetry_overhead.rs).
# Arguments are passed to the sender benchmark.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
use_target_cache
ensure_postgres
ensure_localstack
bash "$ROOT/scripts/bench-grpc.sh"
cargo bench --locked -p connector-sender --bench throughput "$@"
cargo bench --locked -p connector-server --bench telemetry_overhead
