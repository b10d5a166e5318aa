# Shared helpers for the project's scripts: make sure what tests and local runs need is
# installed and running. Every function is idempotent: it does nothing when all is in place.

log() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_port() { # host port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do port_open "$1" "$2" && return 0; sleep 0.1; done
  return 1
}

# wait_for_ready <out file> <pid> <log file> <seconds>: waits until a server that prints
# `key=value` lines and then `ready` (apps/bench's bench_server) has printed `ready`; dies with
# the end of its log when it exits first or takes longer.
wait_for_ready() {
  local out=$1 pid=$2 log_file=$3 seconds=$4 i
  for ((i = 0; i < seconds * 10; i++)); do
    grep -qx ready "$out" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { tail -n 40 "$log_file" >&2; die "the server exited"; }
    sleep 0.1
  done
  die "the server did not get ready in $seconds s"
}

# ready_value <out file> <key>: the value of a `key=value` line the server printed.
ready_value() { awk -F= -v k="$2" '$1 == k { print substr($0, length(k) + 2) }' "$1"; }

ensure_rust() {
  command -v cargo >/dev/null || die "cargo not found: install the Rust toolchain named in rust-toolchain.toml"
  # cargo-nextest runs the tests in parallel processes; fall back to installing it from crates.io.
  if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install cargo-nextest --locked
  fi
}

ensure_postgres() {
  port_open 127.0.0.1 5432 && return 0
  log "starting PostgreSQL"
  if ! command -v pg_ctlcluster >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_port 127.0.0.1 5432 30 || die "PostgreSQL did not start on 127.0.0.1:5432"
}

# The fault tests start private PostgreSQL clusters (initdb + pg_ctl, as the postgres user when
# run as root) that they stop and start again; they need the server binaries, not only a
# running server.
ensure_postgres_server_binaries() {
  if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || [ -x "${POSTGRES_BIN_DIR:-/nonexistent}/initdb" ]; then
    return 0
  fi
  log "installing the PostgreSQL server binaries (Debian package postgresql)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || die "initdb not found under /usr/lib/postgresql/*/bin"
}

ensure_redis() {
  # The binary even when a server already runs: the fault tests start their own.
  if ! command -v redis-server >/dev/null; then
    log "installing redis-server"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  port_open 127.0.0.1 6379 && return 0
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port 127.0.0.1 6379 30 || die "Redis did not start on 127.0.0.1:6379"
}

# The S3 server that verifies SigV4 signatures (header auth and presigned URLs), for storage tests.
S3S_FS_VERSION=0.14.1
ensure_s3s_fs() {
  if command -v s3s-fs >/dev/null && s3s-fs --version 2>/dev/null | grep -q "$S3S_FS_VERSION"; then
    return 0
  fi
  log "installing s3s-fs $S3S_FS_VERSION (takes a few minutes, once)"
  cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked
}

# Headless Chromium (Debian's package) for the end-to-end browser tests.
ensure_chromium() {
  command -v chromium >/dev/null && return 0
  log "installing chromium (Debian package)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  command -v chromium >/dev/null || die "chromium did not install"
}

# ClamAV's daemon (Debian's clamav-daemon) for the clamd crate's tests, which start their own
# clamd with a one-signature database: no freshclam run and no system service needed.
ensure_clamd() {
  if command -v clamd >/dev/null || [ -x /usr/sbin/clamd ]; then return 0; fi
  log "installing clamd (Debian package clamav-daemon)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clamav-daemon >/dev/null
  command -v clamd >/dev/null || [ -x /usr/sbin/clamd ] || die "clamd did not install"
}

# cargo-fuzz for scripts/fuzz.sh (the fuzz targets build on the pinned stable toolchain).
CARGO_FUZZ_VERSION=0.13.2
ensure_cargo_fuzz() {
  if cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then return 0; fi
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
}

# --- load runs (scripts/bench.sh, scripts/hot-path-ab.sh) -----------------------------------

# Requests/s from a saved `wrk` output.
requests_per_sec() { awk '/^Requests\/sec:/ { print $2 }' "$1"; }
# The median of numbers on stdin, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# wrk_run <file> <connections> <url> [token] [--latency]: runs wrk for $DURATION with
# $WRK_THREADS threads, keeps its output, and fails on any non-2xx answer.
wrk_run() {
  local file=$1 connections=$2 url=$3 token=${4:-} latency=${5:-}
  local args=(-t"$WRK_THREADS" -c"$connections" -d"$DURATION")
  [ -n "$latency" ] && args+=(--latency)
  [ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
  wrk "${args[@]}" "$url" >"$file"
  if grep -q "Non-2xx or 3xx responses" "$file"; then
    cat "$file" >&2
    die "non-2xx answers from $url (see $file)"
  fi
  if grep -q "Socket errors" "$file"; then
    log "socket errors against $url: $(grep 'Socket errors' "$file")"
  fi
}
