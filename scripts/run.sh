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
bin=${CARGO_TARGET_DIR:-target}/release

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

port_open 127.0.0.1 "$DCS_PORT" && die "port $DCS_PORT is taken: stop what runs there or set DCS_PORT"
"$bin"/dcs-mock --port "$DCS_PORT" --books testdata/books &
pids+=($!)
wait_port 127.0.0.1 "$DCS_PORT" 20 || die "dcs-mock did not start on port $DCS_PORT"

export DREAM_CENTRAL_STORAGE_URL=${DREAM_CENTRAL_STORAGE_URL:-http://127.0.0.1:$DCS_PORT}
bind=${LMS_BIND:-127.0.0.1:8000}
# The URLs lms-api hands out (signed asset links) point at where it listens.
export LMS_PUBLIC_URL=${LMS_PUBLIC_URL:-http://$bind}
"$bin"/lms-api migrate
"$bin"/lms-api serve &
pids+=($!)
wait_port "${bind%:*}" "${bind##*:}" 30 || die "lms-api did not start on $bind"

admin=$("$bin"/lms-api token --role admin --sub 00000000-0000-4000-8000-000000000001)
teacher=$("$bin"/lms-api token --role teacher --sub 00000000-0000-4000-8000-000000000002)
cat <<TXT

  lms-api   http://$bind   (fake DCS with the sample book at $DREAM_CENTRAL_STORAGE_URL)

  export ADMIN_TOKEN=$admin
  export TEACHER_TOKEN=$teacher

  curl -H "Authorization: Bearer \$TEACHER_TOKEN" http://$bind/api/v1/books
  curl -H "Authorization: Bearer \$ADMIN_TOKEN" http://$bind/api/v1/admin/cache/stats

  The sample book's config with every asset path turned into a URL, and its activities:
  curl -H "Authorization: Bearer \$TEACHER_TOKEN" http://$bind/api/v1/books/1/config
  curl -H "Authorization: Bearer \$TEACHER_TOKEN" http://$bind/api/v1/books/1/activities
TXT
# Listing imports the activities; then one is started, and the signed asset URLs of both
# answers are printed: a browser opens them without a token.
if command -v curl >/dev/null; then
  api() { curl -fsS -H "Authorization: Bearer $teacher" "http://$bind/api/v1/$1" || true; }
  activity=$(api books/1/activities | grep -o '"id":[0-9]*' | head -n 1 | cut -d: -f2)
  page=$(api books/1/config | grep -o '"image_path":"[^"]*"' | head -n 1 | cut -d'"' -f4)
  if [ -n "$activity" ]; then
    printf '  curl -H "Authorization: Bearer $TEACHER_TOKEN" http://%s/api/v1/activities/%s/start\n' \
      "$bind" "$activity"
    image=$(api "activities/$activity/start" | grep -o '"section_path":"[^"]*"' | head -n 1 | cut -d'"' -f4)
  fi
  [ -n "$page" ] && printf '\n  Open in a browser, page 1 of the sample book:\n  %s\n' "$page"
  [ -n "${image:-}" ] && printf '  and the picture of activity %s:\n  %s\n' "$activity" "$image"
fi
cat <<TXT

  Teacher materials: upload a file (streamed; type, extension and content must agree), list
  them with the quota, download one:
  curl -H "Authorization: Bearer \$TEACHER_TOKEN" -F name="Page 1" \\
       -F "file=@testdata/books/FLOWDEMO/images/M1/p2s1.png;type=image/png" \\
       http://$bind/api/v1/teachers/materials/upload
  curl -H "Authorization: Bearer \$TEACHER_TOKEN" http://$bind/api/v1/teachers/materials
  curl -OJ -H "Authorization: Bearer \$TEACHER_TOKEN" http://$bind/api/v1/teachers/materials/<id>/download
TXT
cat <<TXT

  API description: http://$bind/openapi.json      Ctrl-C stops both servers.

TXT
wait -n "${pids[@]}"
