#!/usr/bin/env bash
# The whole tree must use exactly one rustls crypto provider: ring. aws-lc-rs must be absent
# (two providers make rustls panic at runtime unless one is installed by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
tree=$(cargo tree --workspace --all-features --edges normal,build,dev --prefix none --locked)
if grep -Eq '^aws-lc-(rs|sys|fips-sys) ' <<<"$tree"; then
  echo "aws-lc-rs is in the dependency tree:" >&2
  cargo tree --workspace --all-features --locked -i aws-lc-rs >&2 || true
  exit 1
fi
if grep -q '^rustls ' <<<"$tree" && ! grep -q '^ring ' <<<"$tree"; then
  echo "rustls is in the tree but ring is not: no crypto provider" >&2
  exit 1
fi
echo "ok: ring is the only rustls crypto provider; aws-lc-rs is absent"
