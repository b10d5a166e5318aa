# Developer shortcuts; each recipe calls the same scripts CI and the README use.

default:
    @just --list

# Run the main job: lms-api on embedded defaults with the fake DCS and the sample book.
run:
    scripts/run.sh

# Every check and test (`just test`), or one crate's tests (`just test dcs-client`).
test *crate:
    scripts/test.sh {{crate}}

# Formatting, clippy with -D warnings, and the one-crypto-provider check.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    scripts/check-crypto-provider.sh

# The committed benchmarks (figures go to docs/benchmarks.md).
bench:
    scripts/bench.sh

# Instructions per request of the hot path (cached one-book page) against the baseline, under
# callgrind (docs/benchmarks.md, section 1).
profile-hot-path:
    scripts/profile-hot-path.sh

# A quick wall-clock look at the same ratio: alternating wrk rounds (docs/benchmarks.md).
hot-path-ab:
    scripts/hot-path-ab.sh

# The fuzz targets, each for a time (`just fuzz`, `just fuzz 300`, `just fuzz 120 asset_path`).
fuzz seconds="60" *targets:
    scripts/fuzz.sh {{seconds}} {{targets}}

fmt:
    cargo fmt --all
