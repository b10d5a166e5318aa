#!/usr/bin/env bash
# Instruction counts of the hot path (`just profile-hot-path`): a cached
# `GET /api/v1/books?limit=1` on lms-api against the from-memory baseline answering the same
# bytes, both inside one bench_server process run under callgrind.
#
# callgrind counts the instructions the process executes, not time, so the figures repeat on a
# busy machine (the kernel's share, the same for both servers, is not counted). For each server
# the counters are zeroed, PROFILE_REQUESTS requests are sent over one keep-alive connection and
# the counters are dumped; the script prints instructions per request for both and the top
# functions of lms-api's dump. The files stay in PROFILE_OUT for `callgrind_annotate` or
# kcachegrind.
#
# Knobs: PROFILE_REQUESTS (2000), PROFILE_PATH (/api/v1/books?limit=1), PROFILE_OUT
# (target/profile), RUST_LOG (unset = the default request log at info, as in production).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

REQUESTS=${PROFILE_REQUESTS:-2000}
REQUEST_PATH=${PROFILE_PATH:-/api/v1/books?limit=1}
OUT=${PROFILE_OUT:-target/profile}

command -v valgrind >/dev/null || die "valgrind not found (Debian package valgrind)"
command -v curl >/dev/null || die "curl not found"

log "building bench_server (release, with line tables)"
cargo build --release --locked -p lms-bench --bin bench_server

rm -rf "$OUT" && mkdir -p "$OUT"
server_out="$OUT/bench_server.out"
# The log goes to a file, as a deployed server's would go to its collector.
env -u REDIS_URL valgrind --tool=callgrind --collect-atstart=yes \
  --callgrind-out-file="$OUT/callgrind.out.%p" \
  target/release/bench_server --books 200 >"$server_out" 2>"$OUT/bench_server.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM

log "waiting for bench_server under callgrind (slow: every instruction is simulated)"
wait_for_ready "$server_out" "$server" "$OUT/bench_server.log" 360
lms_url=$(ready_value "$server_out" lms_api_url)
baseline_url=$(ready_value "$server_out" baseline_url)
token=$(ready_value "$server_out" teacher_token)

# curl reuses its one connection for every URL of a config file.
requests_config() { # url
  local i
  for ((i = 0; i < REQUESTS; i++)); do printf 'url = "%s"\noutput = "/dev/null"\n' "$1"; done
}
requests_config "$lms_url$REQUEST_PATH" >"$OUT/lms.curl"
requests_config "$baseline_url$REQUEST_PATH" >"$OUT/baseline.curl"

# profile <name> <curl config> [header]: warm (a tenth of the requests), zero, measure, dump.
profile() {
  local name=$1 config=$2 header=${3:-x-profile: 1}
  head -n $((REQUESTS / 5)) "$config" | curl -sS --fail -K - -H "$header"
  callgrind_control -z "$server" >/dev/null
  curl -sS --fail -K "$config" -H "$header"
  callgrind_control -d "$name" "$server" >/dev/null
}
log "profiling $REQUESTS requests of $REQUEST_PATH: baseline"
profile baseline "$OUT/baseline.curl"
log "profiling $REQUESTS requests of $REQUEST_PATH: lms-api"
profile lms-api "$OUT/lms.curl" "Authorization: Bearer $token"

# total_ir <dump file>: the Ir total ("summary:" or "totals:" line) of one dump.
total_ir() { awk '/^(summary|totals):/ { print $2; exit }' "$1"; }
dump_of() { grep -l "^desc: Trigger: dump $1\$" "$OUT"/callgrind.out.* | head -n 1; }
baseline_dump=$(dump_of baseline)
lms_dump=$(dump_of lms-api)
[ -n "$baseline_dump" ] && [ -n "$lms_dump" ] || die "callgrind dumps not found in $OUT"
baseline_ir=$(total_ir "$baseline_dump")
lms_ir=$(total_ir "$lms_dump")
# memset_ir <dump file>: the self cost of glibc's memset variants in one dump.
memset_ir() {
  callgrind_annotate --threshold=100 "$1" 2>/dev/null |
    awk '/__memset_/ && !/=>/ { n = $1; gsub(/,/, "", n); sum += n } END { print sum + 0 }'
}
baseline_memset=$(memset_ir "$baseline_dump")
lms_memset=$(memset_ir "$lms_dump")

{
  echo "# Hot-path instruction profile"
  echo
  echo "$REQUESTS requests of \`$REQUEST_PATH\` per server over one keep-alive connection,"
  echo "bench_server under callgrind (valgrind $(valgrind --version | sed 's/valgrind-//')), log filter: ${RUST_LOG:-the default}."
  echo
  echo "| server | instructions per request | relative to the baseline | without memset | relative |"
  echo "|---|---:|---:|---:|---:|"
  awk -v b="$baseline_ir" -v l="$lms_ir" -v bm="$baseline_memset" -v lm="$lms_memset" -v n="$REQUESTS" 'BEGIN {
    printf "| baseline (actix, bytes from memory) | %.0f | 1.00 | %.0f | 1.00 |\n", b / n, (b - bm) / n
    printf "| lms-api | %.0f | %.2f | %.0f | %.2f |\n", l / n, l / b, (l - lm) / n, (l - lm) / (b - bm)
  }'
  echo
  echo "\"Without memset\" leaves out glibc's memset, nearly all of it actix-http's decoder zeroing a"
  echo "3 KB header index twice per request in both servers: its \`rep stosb\` is counted once per"
  echo "byte by callgrind, but the CPU runs it in a few dozen cycles, so the plain count makes the"
  echo "two servers look closer than they are (\`perf stat\` CPU time per request agrees with the"
  echo "second ratio)."
  echo
  echo "Top functions of lms-api's dump (inclusive), from \`callgrind_annotate --inclusive=yes\`:"
  echo
  echo '```'
  # The first 60 lines from `Ir` on; sed reads to the end, so no writer dies of SIGPIPE (which
  # pipefail would turn into the script's exit status).
  callgrind_annotate --inclusive=yes --threshold=99 "$lms_dump" 2>/dev/null |
    sed -n '/^Ir/,$p' | sed -n '1,60p'
  echo '```'
} | tee "$OUT/summary.md"
log "dumps: $baseline_dump (baseline), $lms_dump (lms-api); summary: $OUT/summary.md"
