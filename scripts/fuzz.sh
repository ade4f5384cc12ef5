#!/usr/bin/env bash
# Builds every fuzz target (fuzz/, cargo-fuzz and libFuzzer) and runs each for SECONDS
# (default 20) on a scratch copy of its committed seeds (fuzz/corpus/TARGET, made by
# fuzz/seeds.py from the transcript tests), so the committed corpus never changes by itself.
# A crash fails the script; libFuzzer leaves the input in fuzz/artifacts/TARGET/ (turn it into
# a regression test named after it). Long campaigns: scripts/fuzz.sh 3600 (not in CI).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET…]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SECONDS_EACH=${1:-20}
shift || true

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# libFuzzer's instrumentation flags are nightly-only; the stable toolchain accepts them so.
export RUSTC_BOOTSTRAP=1

cargo fuzz build
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
for t in "${targets[@]}"; do
    scratch=$(mktemp -d)
    printf '\n--- fuzz %s for %ss\n' "$t" "$SECONDS_EACH"
    log="$scratch.log"
    if ! cargo fuzz run "$t" "$scratch" "fuzz/corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 >"$log" 2>&1; then
        tail -n 60 "$log"
        rm -rf "$scratch" "$log"
        echo "fuzz target $t failed" >&2
        exit 1
    fi
    grep -E '^#[0-9]+.*DONE|^Done [0-9]+ runs' "$log" || tail -n 3 "$log"
    rm -rf "$scratch" "$log"
    # The spool target's directories, once the process that made them is gone.
    for d in /dev/shm/relais-fuzz-spool-* "${TMPDIR:-/tmp}"/relais-fuzz-spool-*; do
        [ -d "$d" ] || continue
        kill -0 "${d##*-}" 2>/dev/null || rm -rf "$d"
    done
done
