#!/usr/bin/env bash
# Proves the two code-generation paths agree: crates/grpc-api/build.rs (protox +
# tonic-prost-build) and `buf generate` with buf.gen.yaml (local plugins protoc-gen-prost and
# protoc-gen-tonic 0.5, installed here into the cache). Both outputs are formatted with rustfmt
# and, once comments are set aside, must be identical. Comments differ for reasons that are not
# code: the plugins add `// @generated` and insertion-point markers, and protoc-gen-tonic 0.5
# does not copy the services' doc comments.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
use_target_cache
ensure_buf

plugins="$CACHE_DIR/protoc-plugins"
want="0.5.0"
have() { [[ -x "$plugins/bin/$1" ]] && grep -q "^$1 v$want:" "$plugins/.crates.toml" 2>/dev/null || grep -q "\"$1 $want " "$plugins/.crates.toml" 2>/dev/null; }
if ! have protoc-gen-prost || ! have protoc-gen-tonic; then
  log "installing protoc-gen-prost and protoc-gen-tonic $want into $plugins (once)"
  cargo install -q --locked --root "$plugins" "protoc-gen-prost@$want" "protoc-gen-tonic@$want"
fi
export PATH="$plugins/bin:$PATH"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

buf generate --template buf.gen.yaml --output "$work/buf"
out_dir=$(cargo build --locked -q -p connector-grpc-api --message-format=json \
  | python3 -c '
import json, sys
dirs = [m["out_dir"] for m in map(json.loads, sys.stdin)
        if m.get("reason") == "build-script-executed" and "connector-grpc-api" in m.get("package_id", "")]
print(dirs[-1] if dirs else "")')
[[ -n "$out_dir" && -f "$out_dir/connector.v1.rs" ]] || die "no build.rs output found"

# build.rs writes messages and services to one file; the plugins write two.
cat "$work/buf/gen/rust/connector/v1/connector.v1.rs" "$work/buf/gen/rust/connector/v1/connector.v1.tonic.rs" >"$work/from-buf.rs"
cp "$out_dir/connector.v1.rs" "$work/from-build-rs.rs"
strip_comments() { sed -E -i '/^[[:space:]]*\/\//d' "$1"; }
strip_comments "$work/from-buf.rs"
strip_comments "$work/from-build-rs.rs"
rustfmt --edition 2024 "$work/from-buf.rs" "$work/from-build-rs.rs"
if ! diff -u "$work/from-build-rs.rs" "$work/from-buf.rs" >"$work/diff"; then
  cat "$work/diff" >&2
  die "build.rs and buf generate disagree (diff above): keep build.rs and buf.gen.yaml in step"
fi
log "codegen: build.rs and buf generate produce the same code ($(wc -l <"$work/from-buf.rs") lines)"
