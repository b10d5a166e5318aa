#!/usr/bin/env bash
# The committed benchmarks (`just bench`); the figures in docs/benchmarks.md come from them:
# the catalog load benchmark below, the presign and config-transform micro-benchmarks, and the
# teacher-upload, start-up and stalled-client benchmarks, and the 60 s mixed soak (on embedded
# defaults, then on PostgreSQL, Redis and S3).
#
#  1. Builds the release binaries: lms-api and the two benchmarks of apps/bench.
#  2. Starts bench_server (apps/bench): lms-api (production wiring, local cache, 200 books in the
#     in-process fake DCS) and a bare actix server returning the same bytes from memory.
#  3. For GET /api/v1/books?limit=1 (a one-book page, where per-request overhead dominates),
#     ?limit=20 and ?limit=200, on both servers: a warm-up, then ROUNDS
#     rounds (server order alternating) of throughput at 64 connections and latency at 8.
#  4. Repeats the lms-api runs against the standalone `lms-api serve` binary (its own process,
#     talking to the same fake DCS), for an lms-api-only memory figure.
#  5. Checks every answer was 200 and a cache hit (no cache miss during any load run), measures
#     RSS, runs the Zipf hit-rate replay, and prints a markdown summary.
#
# Knobs (environment): BENCH_DURATION (15s), BENCH_WARMUP (5s), BENCH_ROUNDS (3),
# BENCH_OUT (target/bench: summary.md and the raw wrk outputs); SOAK_DURATION (60, seconds) and
# SOAK_CLIENTS (24) for the mixed soak.
# The load generator runs on the same machine as the servers and competes with them for CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

DURATION=${BENCH_DURATION:-15s}
WARMUP=${BENCH_WARMUP:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
OUT=${BENCH_OUT:-target/bench}
WRK_THREADS=2
HIGH_CONNECTIONS=64
LOW_CONNECTIONS=8
TARGET_RATIO=0.70
TARGET_P99_MS=2
PATHS=("/api/v1/books?limit=1" "/api/v1/books?limit=20" "/api/v1/books?limit=200")

ensure_tools() {
  local missing=()
  for tool in wrk curl jq; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
}

command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain named in rust-toolchain.toml"
ensure_tools

log "building (release)"
cargo build --release --locked -p lms-api --bin lms-api
cargo build --release --locked -p lms-bench --bin bench_server --bin zipf_replay --bin upload_bench --bin startup_bench --bin held_sockets_bench --bin soak_bench
BIN=target/release

work=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
rm -rf "$OUT/raw" && mkdir -p "$OUT/raw"

# --- helpers -------------------------------------------------------------------------------

rss_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f", kb / 1024 }'; }

# A percentile (50, 99) of a saved `wrk` output, in milliseconds.
percentile_ms() {
  awk -v p="$2%" '$1 == p {
    v = $2
    if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); print v + 0 }
    else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000 }
    else if (v ~ /m$/) { sub(/m$/, "", v); print v * 60000 }
  }' "$1"
}
completed_requests() { awk '/requests in/ { print $1 }' "$1"; }

wrk_warmup() { # url [token]
  local args=(-t"$WRK_THREADS" -c"$HIGH_CONNECTIONS" -d"$WARMUP")
  [ -n "${2:-}" ] && args+=(-H "Authorization: Bearer $2")
  wrk "${args[@]}" "$1" >/dev/null
}

# expect_hit <url> <token> <body file>: one request must be 200 with X-Cache: HIT.
expect_hit() {
  local headers status
  headers=$(curl -sS -D - -o "$3" -H "Authorization: Bearer $2" "$1")
  status=$(printf '%s' "$headers" | head -n 1 | awk '{ print $2 }')
  [ "$status" = 200 ] || die "$1 answered $status"
  printf '%s' "$headers" | grep -qi '^x-cache: HIT' || die "$1 was not a cache hit: $headers"
}

cache_counter() { # base_url admin_token field
  curl -fsS -H "Authorization: Bearer $2" "$1/api/v1/admin/cache/stats" | jq -r ".$3"
}

# measure_round <label> <base_url> <path> <token> <round>: both measurements for one server,
# appending "label path round rps@64 p50@8 p99@8 rps@8 requests" to $work/results.
measure_round() {
  local label=$1 base=$2 path=$3 token=$4 round=$5
  local slug high low
  slug=$(printf '%s' "$label-$path-$round" | tr -c 'A-Za-z0-9-' '_')
  high="$OUT/raw/$slug-c$HIGH_CONNECTIONS.txt"
  low="$OUT/raw/$slug-c$LOW_CONNECTIONS.txt"
  log "$label $path round $round: $HIGH_CONNECTIONS connections"
  wrk_run "$high" "$HIGH_CONNECTIONS" "$base$path" "$token"
  log "$label $path round $round: $LOW_CONNECTIONS connections"
  wrk_run "$low" "$LOW_CONNECTIONS" "$base$path" "$token" --latency
  printf '%s %s %s %s %s %s %s %s\n' "$label" "$path" "$round" \
    "$(requests_per_sec "$high")" "$(percentile_ms "$low" 50)" "$(percentile_ms "$low" 99)" \
    "$(requests_per_sec "$low")" "$(($(completed_requests "$high") + $(completed_requests "$low")))" \
    >>"$work/results"
}

# --- machine -------------------------------------------------------------------------------

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
mem_total=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# --- bench_server: lms-api and the baseline in one process -------------------------------------

log "starting bench_server"
# Production defaults apply (request log at info), except that REDIS_URL is ignored: this
# measures the local cache tier.
env -u REDIS_URL "$BIN/bench_server" >"$work/bench_server.out" 2>"$work/bench_server.log" &
pids+=($!)
wait_for_ready "$work/bench_server.out" "${pids[0]}" "$work/bench_server.log" 60
value() { ready_value "$work/bench_server.out" "$1"; }
lms_url=$(value lms_api_url)
baseline_url=$(value baseline_url)
dcs_url=$(value dcs_url)
teacher_token=$(value teacher_token)
admin_token=$(value admin_token)
server_pid=$(value pid)

for path in "${PATHS[@]}"; do
  expect_hit "$lms_url$path" "$teacher_token" "$work/lms.body"
  curl -fsS -o "$work/baseline.body" "$baseline_url$path"
  cmp -s "$work/lms.body" "$work/baseline.body" || die "baseline body differs from lms-api's for $path"
  cp "$work/lms.body" "$work/bench_server$(printf '%s' "$path" | tr -c 'A-Za-z0-9' '_').body"
done
body_bytes_1=$(wc -c <"$work/bench_server_api_v1_books_limit_1.body")
body_bytes_20=$(wc -c <"$work/bench_server_api_v1_books_limit_20.body")
body_bytes_200=$(wc -c <"$work/bench_server_api_v1_books_limit_200.body")
rss_idle_server=$(rss_kb "$server_pid" VmRSS)
log_bytes_before=$(stat -c %s "$work/bench_server.log")
misses_before=$(cache_counter "$lms_url" "$admin_token" misses)
hits_before=$(cache_counter "$lms_url" "$admin_token" hits)

: >"$work/results"
for path in "${PATHS[@]}"; do
  log "warm-up $path"
  wrk_warmup "$baseline_url$path"
  wrk_warmup "$lms_url$path" "$teacher_token"
  for round in $(seq 1 "$ROUNDS"); do
    # Alternate the order so that drift (thermal, other load) does not favour one server.
    if ((round % 2)); then order=(baseline lms-api); else order=(lms-api baseline); fi
    for server in "${order[@]}"; do
      if [ "$server" = baseline ]; then
        measure_round baseline "$baseline_url" "$path" "" "$round"
      else
        measure_round lms-api "$lms_url" "$path" "$teacher_token" "$round"
      fi
    done
  done
done
lms_requests=$(awk '$1 == "lms-api" { n += $8 } END { print n + 0 }' "$work/results")
misses_after=$(cache_counter "$lms_url" "$admin_token" misses)
hits_after=$(cache_counter "$lms_url" "$admin_token" hits)
rss_load_server=$(rss_kb "$server_pid" VmRSS)
hwm_server=$(rss_kb "$server_pid" VmHWM)
log_bytes=$(($(stat -c %s "$work/bench_server.log") - log_bytes_before))
[ "$misses_after" = "$misses_before" ] ||
  die "lms-api had $((misses_after - misses_before)) cache misses during the load runs"
# The warm-up runs are not counted by wrk_run, so hits exceed the measured requests.
hits_during=$((hits_after - hits_before))
((hits_during >= lms_requests)) || die "fewer cache hits ($hits_during) than measured requests ($lms_requests)"

# --- standalone lms-api: the production binary on its own --------------------------------------

log "starting standalone lms-api serve"
mkdir -p "$work/standalone"
standalone_secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
# A free port (checked, then taken by lms-api: a port grabbed in between fails the start).
standalone_port=
for _ in $(seq 1 50); do
  candidate=$((20000 + RANDOM % 40000))
  port_open 127.0.0.1 "$candidate" || { standalone_port=$candidate; break; }
done
[ -n "$standalone_port" ] || die "no free port found for the standalone lms-api"
standalone_url=http://127.0.0.1:$standalone_port
standalone_env=(
  "LMS_BIND=127.0.0.1:$standalone_port"
  "DATABASE_URL=sqlite://$work/standalone/lms.db?mode=rwc"
  "DREAM_CENTRAL_STORAGE_URL=$dcs_url"
  "LMS_JWT_SECRET=$standalone_secret"
)
lms_bin=$(realpath "$BIN/lms-api")
(cd "$work/standalone" && exec env -u REDIS_URL "${standalone_env[@]}" "$lms_bin" serve) \
  2>"$work/standalone.log" &
standalone_pid=$!
pids+=("$standalone_pid")
for _ in $(seq 1 300); do
  port_open 127.0.0.1 "$standalone_port" && break
  kill -0 "$standalone_pid" 2>/dev/null || { cat "$work/standalone.log" >&2; die "lms-api serve exited"; }
  sleep 0.1
done
port_open 127.0.0.1 "$standalone_port" || die "lms-api serve did not start in 30 s"
token_for() {
  (cd "$work/standalone" && env "${standalone_env[@]}" "$lms_bin" token --role "$1" \
    --sub 00000000-0000-4000-8000-00000000000"$2")
}
standalone_teacher=$(token_for teacher 2)
standalone_admin=$(token_for admin 1)
for path in "${PATHS[@]}"; do
  curl -fsS -o /dev/null -H "Authorization: Bearer $standalone_teacher" "$standalone_url$path"
  expect_hit "$standalone_url$path" "$standalone_teacher" "$work/standalone.body"
  cmp -s "$work/standalone.body" "$work/bench_server$(printf '%s' "$path" | tr -c 'A-Za-z0-9' '_').body" ||
    die "standalone lms-api body differs from bench_server's for $path"
done
rss_idle_standalone=$(rss_kb "$standalone_pid" VmRSS)
standalone_misses_before=$(cache_counter "$standalone_url" "$standalone_admin" misses)
for path in "${PATHS[@]}"; do
  log "warm-up standalone $path"
  wrk_warmup "$standalone_url$path" "$standalone_teacher"
  for round in $(seq 1 "$ROUNDS"); do
    measure_round standalone "$standalone_url" "$path" "$standalone_teacher" "$round"
  done
done
standalone_misses_after=$(cache_counter "$standalone_url" "$standalone_admin" misses)
[ "$standalone_misses_after" = "$standalone_misses_before" ] ||
  die "standalone lms-api had cache misses during the load runs"
rss_load_standalone=$(rss_kb "$standalone_pid" VmRSS)
hwm_standalone=$(rss_kb "$standalone_pid" VmHWM)

# --- Zipf replay ---------------------------------------------------------------------------

log "Zipf replay"
"$BIN/zipf_replay" --requests-per-second 100 >"$work/zipf.md"
zipf_sensitivity=$(
  for rate in 1000 100 10; do
    "$BIN/zipf_replay" --requests-per-second "$rate" >"$work/zipf-$rate.md"
    printf '| %s req/s | %s | %s |\n' "$rate" \
      "$(awk -F'|' '/cache hit rate/ { gsub(/\*/, "", $3); split($3, a, " "); print a[1] }' "$work/zipf-$rate.md")" \
      "$(awk -F'|' '/reached DCS/ { split($3, a, " "); print a[1] }' "$work/zipf-$rate.md")"
  done
)
zipf_hit_rate=$(awk -F'|' '/cache hit rate/ { gsub(/[*% ]/, "", $3); split($3, a, "("); print a[1] }' "$work/zipf.md")

# --- summary -------------------------------------------------------------------------------

stat_of() { # label path column -> median over rounds
  awk -v l="$1" -v p="$2" -v c="$3" '$1 == l && $2 == p { print $c }' "$work/results" | median
}
rounds_of() {
  awk -v l="$1" -v p="$2" -v c="$3" '$1 == l && $2 == p { printf "%s%s", sep, $c; sep = " / " }' "$work/results"
}
fmt_int() { printf "%.0f" "$1"; }
fmt_ms() { printf "%.2f" "$1"; }
verdict() { if awk -v a="$1" -v b="$2" "BEGIN { exit !(a $3 b) }"; then echo met; else echo "**missed**"; fi; }

{
  echo "# Catalog benchmark results"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') with \`scripts/bench.sh\` (BENCH_DURATION=$DURATION, BENCH_WARMUP=$WARMUP, BENCH_ROUNDS=$ROUNDS)."
  echo
  echo "Machine: $(nproc) CPUs ($cpu_model), $mem_total RAM, Linux $(uname -r); load average before the run: $load_before."
  echo "Load generator: $(wrk -v 2>&1 | head -n 1 | cut -d' ' -f1-2) with $WRK_THREADS threads on the same machine (it shares the CPUs with the server)."
  echo "Response bodies: limit=1 is $body_bytes_1 bytes, limit=20 is $body_bytes_20 bytes, limit=200 is $body_bytes_200 bytes. lms-api log filter: ${RUST_LOG:-the default (request log at info, written to a file)}."
  echo
  echo "Medians over $ROUNDS rounds of $DURATION each; per-round values follow in the next table."
  echo
  echo "| endpoint | server | req/s at $HIGH_CONNECTIONS conn | p50 at $LOW_CONNECTIONS conn | p99 at $LOW_CONNECTIONS conn | req/s at $LOW_CONNECTIONS conn |"
  echo "|---|---|---:|---:|---:|---:|"
  for path in "${PATHS[@]}"; do
    for label in baseline lms-api standalone; do
      case $label in
        baseline) name="baseline: actix, bytes from memory (bench_server)" ;;
        lms-api) name="lms-api (bench_server)" ;;
        standalone) name="lms-api (standalone \`lms-api serve\`)" ;;
      esac
      echo "| \`$path\` | $name | $(fmt_int "$(stat_of "$label" "$path" 4)") | $(fmt_ms "$(stat_of "$label" "$path" 5)") ms | $(fmt_ms "$(stat_of "$label" "$path" 6)") ms | $(fmt_int "$(stat_of "$label" "$path" 7)") |"
    done
  done
  echo
  echo "| endpoint | server | req/s at $HIGH_CONNECTIONS conn, per round | p99 at $LOW_CONNECTIONS conn (ms), per round |"
  echo "|---|---|---|---|"
  for path in "${PATHS[@]}"; do
    for label in baseline lms-api standalone; do
      echo "| \`$path\` | $label | $(rounds_of "$label" "$path" 4) | $(rounds_of "$label" "$path" 6) |"
    done
  done
  echo
  echo "| endpoint | lms-api / baseline req/s at $HIGH_CONNECTIONS conn (target >= 70%) | lms-api p99 at $LOW_CONNECTIONS conn (target <= $TARGET_P99_MS ms) |"
  echo "|---|---|---|"
  for path in "${PATHS[@]}"; do
    ratio=$(awk -v a="$(stat_of lms-api "$path" 4)" -v b="$(stat_of baseline "$path" 4)" 'BEGIN { printf "%.3f", a / b }')
    p99=$(stat_of lms-api "$path" 6)
    echo "| \`$path\` | $(awk -v r="$ratio" 'BEGIN { printf "%.0f%%", r * 100 }') ($(verdict "$ratio" "$TARGET_RATIO" '>=')) | $(fmt_ms "$p99") ms ($(verdict "$p99" "$TARGET_P99_MS" '<=')) |"
  done
  echo
  echo "Every measured answer was 200 (wrk reported no non-2xx), and lms-api's cache counted no miss during the load runs ($hits_during hits for $lms_requests measured requests plus warm-ups)."
  echo
  echo "| memory (VmRSS) | idle, cache warm | after the load runs | peak (VmHWM) |"
  echo "|---|---:|---:|---:|"
  echo "| bench_server process (lms-api + baseline + fake DCS with 200 books) | $(mb "$rss_idle_server") MB | $(mb "$rss_load_server") MB | $(mb "$hwm_server") MB |"
  echo "| standalone \`lms-api serve\` | $(mb "$rss_idle_standalone") MB | $(mb "$rss_load_standalone") MB | $(mb "$hwm_standalone") MB |"
  echo
  echo "Request log written by bench_server's lms-api during its load runs: $(mb $((log_bytes / 1024))) MB."
  echo
  echo "## Zipf replay"
  echo
  cat "$work/zipf.md"
  echo
  echo "Hit rate target >= 95%: $(verdict "$zipf_hit_rate" 95 '>=')."
  echo
  echo "| simulated arrival rate | cache hit rate | requests that reached DCS |"
  echo "|---|---:|---:|"
  echo "$zipf_sensitivity"
} >"$OUT/summary.md"

cat "$OUT/summary.md"
log "summary: $OUT/summary.md, raw wrk outputs: $OUT/raw/"

# The micro-benchmarks of docs/benchmarks.md sections 3 and 4 (no servers involved).
log "presigning (crates/storage)"
cargo bench --locked -p storage --bench presign
log "config transformation (crates/domain)"
cargo bench --locked -p domain --bench config_transform

# Section 5: a 100 MiB teacher upload through lms-api next to a direct PUT to s3s-fs, without
# and with virus scanning (a real clamd, offline).
ensure_s3s_fs
ensure_clamd
log "teacher uploads (apps/bench upload_bench)"
target/release/upload_bench --lms-api target/release/lms-api --size-mb 100 --rounds 3 | tee "$OUT/upload.md"
target/release/upload_bench --lms-api target/release/lms-api --size-mb 100 --rounds 3 --scan | tee "$OUT/upload-scan.md"

# Section 6: launch-to-ready time and idle RSS of the release binary.
log "start-up (apps/bench startup_bench)"
target/release/startup_bench --lms-api target/release/lms-api --runs 10 | tee "$OUT/startup.md"

# Section 7: thousands of stalled request bodies.
log "stalled clients (apps/bench held_sockets_bench)"
ulimit -n 20000 2>/dev/null || true
target/release/held_sockets_bench --lms-api target/release/lms-api --connections 4000 | tee "$OUT/held-sockets.md"

# Section 8: mixed load for SOAK_DURATION seconds (60 by default): catalog reads, config
# transforms, media ranges, uploads and signed webhooks against the release binary. It exits
# non-zero (and so fails this script) on any 5xx, transport error or unexpected answer, or when
# lms-api's RSS is not flat.
# Then the same mix on the production backends: PostgreSQL (a database of its own on the local
# server), Redis (a private redis-server) and S3 (s3s-fs), media through lms-api's ranged S3 reads.
log "mixed soak (apps/bench soak_bench), embedded defaults"
target/release/soak_bench --lms-api target/release/lms-api | tee "$OUT/soak.md"
ensure_postgres
ensure_redis
log "mixed soak (apps/bench soak_bench), PostgreSQL, Redis and S3"
target/release/soak_bench --lms-api target/release/lms-api --backends production | tee "$OUT/soak-production.md"
