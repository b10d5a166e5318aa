#!/usr/bin/env bash
# Runs schemathesis (from PyPI) against the /openapi.json of a running lms-api over the fake DCS
# with a token (admin unless SCHEMATHESIS_ROLE says otherwise): every answer must match the document (status, shape) and none may be a
# 5xx. It exits non-zero on any failure.
#   scripts/schemathesis.sh              the catalog routes
#   scripts/schemathesis.sh content ...  the routes of these OpenAPI tags
# Knobs: SCHEMATHESIS_EXAMPLES (50), SCHEMATHESIS_VENV (target/schemathesis-venv),
# SCHEMATHESIS_ROLE (admin; `teacher` for the materials routes).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust

venv=$(realpath -m "${SCHEMATHESIS_VENV:-target/schemathesis-venv}")
if [ ! -x "$venv/bin/schemathesis" ]; then
  log "installing schemathesis (PyPI) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q schemathesis
fi

log "building"
cargo build --locked --bin dcs-mock --bin lms-api
bin=$(cd "${CARGO_TARGET_DIR:-target}/debug" && pwd)
books=$(pwd)/testdata/books

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

dcs_port=${DCS_PORT:-18081}
bind=${LMS_BIND:-127.0.0.1:18000}
port_open 127.0.0.1 "$dcs_port" && die "port $dcs_port is taken: set DCS_PORT"
"$bin/dcs-mock" --port "$dcs_port" --books "$books" >"$work/dcs.log" 2>&1 &
pids+=($!)
wait_port 127.0.0.1 "$dcs_port" 20 || die "dcs-mock did not start"
cd "$work"
export DREAM_CENTRAL_STORAGE_URL=http://127.0.0.1:$dcs_port LMS_BIND=$bind \
  LMS_PUBLIC_URL=http://$bind RUST_LOG=${RUST_LOG:-warn}
"$bin/lms-api" serve >"$work/lms.log" 2>&1 &
pids+=($!)
wait_port "${bind%:*}" "${bind##*:}" 30 || die "lms-api did not start on $bind"
token=$("$bin/lms-api" token --role "${SCHEMATHESIS_ROLE:-admin}" --sub 00000000-0000-4000-8000-000000000001)

tags=("$@")
[ ${#tags[@]} -gt 0 ] || tags=(catalog)
args=()
for tag in "${tags[@]}"; do args+=(--include-tag "$tag"); done
log "schemathesis on the ${tags[*]} routes"
"$venv/bin/schemathesis" run "http://$bind/openapi.json" \
  -H "Authorization: Bearer $token" "${args[@]}" \
  --max-examples "${SCHEMATHESIS_EXAMPLES:-50}"
