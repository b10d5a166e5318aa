#!/usr/bin/env bash
# A quick look at the hot-path ratio (`just hot-path-ab`): a cached one-book page
# (`GET /api/v1/books?limit=1`) on lms-api against the from-memory baseline, both in one
# bench_server process, in alternating wrk rounds (order swapped each round) at 64 connections.
# Prints each round's rates and ratio, then the median ratio. Shorter than scripts/bench.sh's
# catalog part, for trying a change or a log level (`RUST_LOG=warn scripts/hot-path-ab.sh`).
# wrk shares the machine's CPUs with the server, as in scripts/bench.sh.
#
# Knobs: AB_ROUNDS (6), AB_DURATION (5s), AB_PATH (/api/v1/books?limit=1).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ROUNDS=${AB_ROUNDS:-6}
DURATION=${AB_DURATION:-5s}
REQUEST_PATH=${AB_PATH:-/api/v1/books?limit=1}

command -v wrk >/dev/null || die "wrk not found (Debian package wrk)"
log "building bench_server (release)"
cargo build --release --locked -p lms-bench --bin bench_server

out=$(mktemp -d)
env -u REDIS_URL target/release/bench_server >"$out/ready" 2>"$out/server.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$out"' EXIT INT TERM
wait_for_ready "$out/ready" "$server" "$out/server.log" 60
lms_url=$(ready_value "$out/ready" lms_api_url)$REQUEST_PATH
baseline_url=$(ready_value "$out/ready" baseline_url)$REQUEST_PATH
token=$(ready_value "$out/ready" teacher_token)

WRK_THREADS=2
rate() { # url [token]: requests/s at 64 connections (any non-2xx answer stops the script)
  wrk_run "$out/wrk" 64 "$1" "${2:-}"
  requests_per_sec "$out/wrk"
}
log "warming up"
DURATION=3s rate "$lms_url" "$token" >/dev/null
DURATION=3s rate "$baseline_url" >/dev/null

ratios=()
for ((round = 1; round <= ROUNDS; round++)); do
  if ((round % 2)); then
    baseline=$(rate "$baseline_url"); lms=$(rate "$lms_url" "$token")
  else
    lms=$(rate "$lms_url" "$token"); baseline=$(rate "$baseline_url")
  fi
  ratio=$(awk -v l="$lms" -v b="$baseline" 'BEGIN { printf "%.1f", 100 * l / b }')
  ratios+=("$ratio")
  printf 'round %d: baseline %.0f req/s, lms-api %.0f req/s, ratio %s%%\n' \
    "$round" "$baseline" "$lms" "$ratio"
done
printf 'median ratio over %d rounds: %.1f%% (log filter: %s)\n' "$ROUNDS" \
  "$(printf '%s\n' "${ratios[@]}" | median)" "${RUST_LOG:-the default}"
