#!/usr/bin/env bash
# Runs every check and every test, on a fresh machine too: installs and starts what the tests
# need, then fmt, clippy (-D warnings), the crypto-provider check, and all tests.
#   scripts/test.sh            everything
#   scripts/test.sh <crate>    one crate's tests only (e.g. dcs-client)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_rust
ensure_postgres
ensure_redis
if compgen -G "crates/storage/tests/*.rs" >/dev/null; then ensure_s3s_fs; fi

if [ $# -gt 0 ]; then
  exec cargo nextest run --no-fail-fast -p "$@"
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "one rustls crypto provider (ring), no aws-lc-rs"
scripts/check-crypto-provider.sh
log "examples build"
cargo build --workspace --examples --locked
log "tests"
cargo nextest run --workspace --no-fail-fast --locked
log "doc tests"
cargo test --workspace --doc --locked
