#!/usr/bin/env bash
# Runs the sender benchmark (release build) with PostgreSQL and LocalStack provisioned as for
# the tests. Figures go to stdout; docs/performance.md records a run.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
use_target_cache
ensure_postgres
ensure_localstack
cargo bench --locked -p connector-sender --bench throughput "$@"
