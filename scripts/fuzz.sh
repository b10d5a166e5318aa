#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (docs/fuzzing.md), each for a fixed time, and fails on
# any crash, panic, hang or leak-sized memory growth.
#   scripts/fuzz.sh                  every target, 60 s each
#   scripts/fuzz.sh 300              every target, 300 s each
#   scripts/fuzz.sh 120 asset_path   one target
# Each run starts from the committed seeds (fuzz/corpus/<target>) plus what earlier runs found
# (fuzz/target/corpus/<target>, not committed). Crash inputs land in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

seconds=${1:-60}
[[ "$seconds" =~ ^[0-9]+$ ]] || die "usage: scripts/fuzz.sh [seconds-per-target] [target...]"
shift || true

ensure_rust
ensure_cargo_fuzz

# The pinned stable toolchain cannot build with a sanitizer (-Zsanitizer is nightly-only), so
# the targets are built without one: libFuzzer's coverage instrumentation works on stable, and
# our own code forbids `unsafe`, which is what a sanitizer would mostly watch. Release mode
# for speed (with cargo-fuzz that means no debug_assert!/overflow checks; `-a` adds them).
fuzz_flags=(-O --sanitizer none)
if [ -n "${CARGO_TARGET_DIR:-}" ]; then fuzz_flags+=(--target-dir "$CARGO_TARGET_DIR"); fi

if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

log "building ${targets[*]}"
for target in "${targets[@]}"; do
  cargo fuzz build "${fuzz_flags[@]}" "$target"
done

failed=()
summary=()
for target in "${targets[@]}"; do
  work="fuzz/target/corpus/$target"
  mkdir -p "$work"
  out="fuzz/target/fuzz-$target.log"
  log "fuzzing $target for ${seconds}s"
  # -timeout: an input that takes 10 s is a hang (libFuzzer's default is 20 minutes).
  if cargo fuzz run "${fuzz_flags[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$out" 2>&1; then
    runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$out" | tail -n 1)
    secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$out" | tail -n 1)
    files=$(find "$work" -type f | wc -l)
    summary+=("$(printf '%-18s %6ss %12s execs %9s exec/s %6s corpus files   ok' \
      "$target" "$secs" "$runs" "$((runs / (secs > 0 ? secs : 1)))" "$files")")
  else
    tail -n 40 "$out" >&2
    failed+=("$target")
    summary+=("$(printf '%-18s FAILED: see %s and fuzz/artifacts/%s/' "$target" "$out" "$target")")
  fi
done

log "summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then die "fuzz targets failed: ${failed[*]}"; fi
