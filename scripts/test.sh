#!/usr/bin/env bash
# Runs every check and every test, on a fresh machine too: installs and starts what the tests
# need, then fmt, clippy (-D warnings), the crypto-provider check, schemathesis over every route
# (scripts/schemathesis.sh), and all tests.
#   scripts/test.sh            everything
#   scripts/test.sh <crate>... those crates' tests and doc tests only (e.g. dcs-client)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_rust
ensure_postgres
ensure_redis
# The fault suite runs its own PostgreSQL clusters and redis-server processes to kill and restart.
ensure_postgres_server_binaries
# A real SigV4-verifying S3 server and a browser for the storage and end-to-end tests.
ensure_s3s_fs
ensure_chromium
# A real clamd for the virus-scanning tests (each test starts its own, offline).
ensure_clamd

# dcs-client's integration tests also run read-only against a real DCS when configured.
real_dcs_note() {
  if [ -n "${DCS_TEST_URL:-}" ] && [ -n "${DCS_TEST_EMAIL:-}" ] && [ -n "${DCS_TEST_PASSWORD:-}" ]; then
    log "dcs-client's read-only integration tests also ran against the real DCS at $DCS_TEST_URL"
  else
    log "real DCS tests skipped: set DCS_TEST_URL, DCS_TEST_EMAIL and DCS_TEST_PASSWORD to run them"
  fi
}

if [ $# -gt 0 ]; then
  packages=() doc_packages=()
  for crate in "$@"; do
    packages+=(-p "$crate")
    # Doc tests exist only for library crates (crates/*, apps/*, migrations).
    for dir in "crates/$crate" "apps/$crate" "$crate"; do
      if [ -f "$dir/src/lib.rs" ]; then doc_packages+=(-p "$crate"); break; fi
    done
  done
  log "tests of $*"
  cargo nextest run --no-fail-fast "${packages[@]}"
  if [ ${#doc_packages[@]} -gt 0 ]; then
    log "doc tests of $*"
    cargo test --doc "${doc_packages[@]}"
  fi
  for crate in "$@"; do
    if [ "$crate" = dcs-client ]; then real_dcs_note; fi
  done
  exit 0
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "one rustls crypto provider (ring), no aws-lc-rs"
scripts/check-crypto-provider.sh
log "examples build"
cargo build --workspace --examples --locked
# fuzz/ is its own workspace: checked here so its targets cannot silently stop compiling
# (about 2 minutes from scratch, seconds after; running them is scripts/fuzz.sh, not CI).
log "fuzz targets compile"
cargo check --manifest-path fuzz/Cargo.toml --locked
log "doc tests"
cargo test --workspace --doc --locked
real_dcs_note
# Schema conformance: every route against /openapi.json (no 5xx, every answer as documented).
log "schemathesis on every route"
SCHEMATHESIS_EXAMPLES=${SCHEMATHESIS_EXAMPLES:-20} scripts/schemathesis.sh
# Last, so the run ends with the count of every test that ran.
log "tests"
cargo nextest run --workspace --no-fail-fast --locked
