#!/usr/bin/env bash
# Runs the main job on a fresh machine: the fake DCS serving the sample book, and lms-api on its
# embedded defaults (SQLite under data/, objects under data/objects) talking to it. Prints the
# base URL and ready-to-use admin and teacher tokens. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust

DCS_PORT=${DCS_PORT:-8081}
log "building (release)"
cargo build --release --locked --bin dcs-mock --bin lms-api

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

port_open 127.0.0.1 "$DCS_PORT" && die "port $DCS_PORT is taken: stop what runs there or set DCS_PORT"
target/release/dcs-mock --port "$DCS_PORT" --books testdata/books &
pids+=($!)
wait_port 127.0.0.1 "$DCS_PORT" 20 || die "dcs-mock did not start on port $DCS_PORT"

export DREAM_CENTRAL_STORAGE_URL=${DREAM_CENTRAL_STORAGE_URL:-http://127.0.0.1:$DCS_PORT}
bind=${LMS_BIND:-127.0.0.1:8000}
target/release/lms-api migrate
target/release/lms-api serve &
pids+=($!)
wait_port "${bind%:*}" "${bind##*:}" 30 || die "lms-api did not start on $bind"

admin=$(target/release/lms-api token --role admin --sub 00000000-0000-4000-8000-000000000001)
teacher=$(target/release/lms-api token --role teacher --sub 00000000-0000-4000-8000-000000000002)
cat <<TXT

  lms-api   http://$bind   (fake DCS with the sample book at $DREAM_CENTRAL_STORAGE_URL)

  export ADMIN_TOKEN=$admin
  export TEACHER_TOKEN=$teacher

  curl -H "Authorization: Bearer \$TEACHER_TOKEN" http://$bind/api/v1/books
  curl -H "Authorization: Bearer \$ADMIN_TOKEN" http://$bind/api/v1/admin/cache/stats
  API description: http://$bind/openapi.json      Ctrl-C stops both servers.

TXT
wait -n "${pids[@]}"
