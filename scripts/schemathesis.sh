#!/usr/bin/env bash
# Runs schemathesis (from PyPI) against the /openapi.json of a running lms-api over the fake DCS:
# every route, each group of routes (OpenAPI tag) with a token of the role that uses it. Every
# answer must match the document (status, headers, body) and none may be a 5xx. It exits
# non-zero on any failure.
#   scripts/schemathesis.sh                   every group
#   scripts/schemathesis.sh materials admin   these groups (OpenAPI tags)
# The groups and their roles:
#   system, auth, catalog: teacher   content: student   materials: teacher   admin: admin
#   webhooks: no token; two passes. Unsigned, the refusals (401, 413) must be the documented
#             ones; signed (scripts/schemathesis_hooks.py signs each generated body with the
#             server's webhook secret, as DCS does), the deliveries reach the parser, the event
#             log and the cache invalidation, and those answers are checked too.
# What the schema cannot say is in scripts/schemathesis.toml, each exception commented.
# Knobs: SCHEMATHESIS_EXAMPLES (50), SCHEMATHESIS_VENV (target/schemathesis-venv),
# SCHEMATHESIS_VERSION (the pinned release),
# SCHEMATHESIS_ROLE (one role for every group instead), SCHEMATHESIS_ARGS (more arguments for
# `schemathesis run`, e.g. `--seed 1`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_rust

all_groups=(system auth catalog content materials admin webhooks)
role_of() {
  if [ -n "${SCHEMATHESIS_ROLE:-}" ]; then echo "$SCHEMATHESIS_ROLE"; return; fi
  case "$1" in
    content) echo student ;;
    materials) echo teacher ;;
    admin) echo admin ;;
    webhooks) echo "" ;;
    *) echo teacher ;;
  esac
}
groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=("${all_groups[@]}")
for group in "${groups[@]}"; do
  [[ " ${all_groups[*]} " == *" $group "* ]] || die "unknown group $group (${all_groups[*]})"
done

# The version the exceptions in scripts/schemathesis.toml were written against.
version=${SCHEMATHESIS_VERSION:-4.32.5}
venv=$(realpath -m "${SCHEMATHESIS_VENV:-target/schemathesis-venv}")
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -qF "$version"; then
  log "installing schemathesis $version (PyPI) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$version"
fi

log "building"
cargo build --locked --bin dcs-mock --bin lms-api
bin=$(cd "${CARGO_TARGET_DIR:-target}/debug" && pwd)
books=$(pwd)/testdata/books
config=$(pwd)/scripts/schemathesis.toml
hooks_dir=$(pwd)/scripts

work=$(mktemp -d)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

dcs_port=${DCS_PORT:-18081}
bind=${LMS_BIND:-127.0.0.1:18000}
port_open 127.0.0.1 "$dcs_port" && die "port $dcs_port is taken: set DCS_PORT"
port_open "${bind%:*}" "${bind##*:}" && die "$bind is taken: set LMS_BIND"
"$bin/dcs-mock" --port "$dcs_port" --books "$books" >"$work/dcs.log" 2>&1 &
pids+=($!)
wait_port 127.0.0.1 "$dcs_port" 20 || die "dcs-mock did not start"
cd "$work"
# A database of its own (SQLite under $work), so each run starts empty.
# The webhook secret of this run, for the signed pass over the webhook routes.
webhook_secret=schemathesis-webhook-secret-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')
export DREAM_CENTRAL_STORAGE_URL=http://127.0.0.1:$dcs_port LMS_BIND=$bind \
  LMS_PUBLIC_URL=http://$bind RUST_LOG=${RUST_LOG:-warn} \
  DREAM_CENTRAL_STORAGE_WEBHOOK_SECRET=$webhook_secret
"$bin/lms-api" serve >"$work/lms.log" 2>&1 &
pids+=($!)
wait_port "${bind%:*}" "${bind##*:}" 30 || die "lms-api did not start on $bind"

# Deliveries lms-api processed (signature verified, event known), from its /metrics.
processed_deliveries() {
  python3 - "http://$bind/metrics" <<'PY'
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
print(int(sum(float(m) for m in re.findall(
    r'^dcs_webhook_deliveries_total\{[^}]*outcome="processed"[^}]*\} (\S+)$', text, re.M))))
PY
}

failed=()
for group in "${groups[@]}"; do
  role=$(role_of "$group")
  headers=()
  if [ -n "$role" ]; then
    token=$("$bin/lms-api" token --role "$role" --sub 00000000-0000-4000-8000-000000000001)
    headers=(-H "Authorization: Bearer $token")
  fi
  passes=(plain)
  [ "$group" = webhooks ] && passes=(unsigned signed)
  for pass in "${passes[@]}"; do
    hooks=()
    if [ "$pass" = signed ]; then
      hooks=(env PYTHONPATH="$hooks_dir" SCHEMATHESIS_HOOKS=schemathesis_hooks
        SCHEMATHESIS_WEBHOOK_SECRET="$webhook_secret")
    fi
    name=$group
    [ "$pass" = plain ] || name+=" ($pass)"
    log "schemathesis on the $name routes${role:+ as $role}"
    # shellcheck disable=SC2086 # SCHEMATHESIS_ARGS is a list of arguments.
    if ! "${hooks[@]}" "$venv/bin/schemathesis" --config-file "$config" \
      run "http://$bind/openapi.json" "${headers[@]}" --include-tag "$group" \
      --max-examples "${SCHEMATHESIS_EXAMPLES:-50}" ${SCHEMATHESIS_ARGS:-}; then
      failed+=("$name")
    fi
    if [ "$pass" = signed ]; then
      # The pass means something only if signed deliveries got through the signature check.
      processed=$(processed_deliveries)
      log "signed deliveries processed by lms-api: $processed"
      [ "$processed" -gt 0 ] || failed+=("$name: no delivery passed the signature check")
    fi
  done
done
if ! kill -0 "${pids[1]}" 2>/dev/null; then
  tail -n 50 "$work/lms.log" >&2
  die "lms-api stopped during the run"
fi
[ ${#failed[@]} -eq 0 ] || die "schemathesis found failures in: ${failed[*]}"
log "schemathesis: no failures in ${groups[*]}"
