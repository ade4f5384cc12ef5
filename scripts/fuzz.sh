#!/usr/bin/env bash
# Builds every fuzz target (fuzz/, cargo-fuzz and libFuzzer) and runs each for SECONDS
# (default 20) on a scratch copy of its committed seeds (fuzz/corpus/TARGET, made by
# fuzz/seeds.py from the transcript tests), so the committed corpus never changes by itself.
# A crash fails the script; libFuzzer leaves the input in fuzz/artifacts/TARGET/ (turn it into
# a regression test named after it). Long campaigns: scripts/fuzz.sh 3600 (not in CI).
#
# Each run ends with a summary line: executions, executions per second, edges covered out of
# the target's instrumented edges, features, corpus size and peak memory.
#   FUZZ_LOG_DIR=DIR  keeps each run's libFuzzer log in DIR and appends the summaries to
#                     DIR/summary.txt (campaigns);
#   FUZZ_MERGE=1      merges what the run found into the committed corpus, minimised (only
#                     inputs that add coverage are kept).
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

# One line from a libFuzzer log: TARGET, seconds, executions, edges covered / instrumented.
summary() {
    local t=$1 log=$2 total last execs rss
    total=$(grep -oE 'Loaded 1 modules +\(([0-9]+) inline 8-bit counters' "$log" | grep -oE '[0-9]+ inline' | grep -oE '[0-9]+' | head -n 1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$')
    rss=$(grep -oE 'stat::peak_rss_mb: *[0-9]+' "$log" | grep -oE '[0-9]+$')
    local cov ft corp line
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+')
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+')
    corp=$(grep -oE 'corp: [0-9]+' <<<"$last" | grep -oE '[0-9]+')
    line=$(printf '%-15s %6ss  %12s execs  %8s/s  edges %s/%s (%s%%)  features %s  corpus %s  rss %s MB' \
        "$t" "$SECONDS_EACH" "${execs:-?}" "$(( ${execs:-0} / SECONDS_EACH ))" "${cov:-?}" "${total:-?}" \
        "$(awk -v c="${cov:-0}" -v t="${total:-1}" 'BEGIN { printf "%.1f", 100 * c / t }')" \
        "${ft:-?}" "${corp:-?}" "${rss:-?}")
    echo "$line"
    if [ -n "${FUZZ_LOG_DIR:-}" ]; then
        mkdir -p "$FUZZ_LOG_DIR"
        echo "$(date -u +%FT%TZ) $line" >>"$FUZZ_LOG_DIR/summary.txt"
    fi
}

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
        -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        rm -rf "$scratch" "$log"
        echo "fuzz target $t failed" >&2
        exit 1
    fi
    summary "$t" "$log"
    if [ "${FUZZ_MERGE:-}" = 1 ]; then
        before=$(ls "fuzz/corpus/$t" | wc -l)
        cargo fuzz run "$t" "fuzz/corpus/$t" "$scratch" -- -merge=1 -rss_limit_mb=2048 \
            >"$log.merge" 2>&1 || { tail -n 20 "$log.merge"; exit 1; }
        printf '    merged: corpus %s -> %s inputs\n' "$before" "$(ls "fuzz/corpus/$t" | wc -l)"
        rm -f "$log.merge"
    fi
    if [ -n "${FUZZ_LOG_DIR:-}" ]; then
        mkdir -p "$FUZZ_LOG_DIR"
        cp "$log" "$FUZZ_LOG_DIR/$t.log"
    fi
    rm -rf "$scratch" "$log"
    # The spool target's directories, once the process that made them is gone.
    for d in /dev/shm/relais-fuzz-spool-* "${TMPDIR:-/tmp}"/relais-fuzz-spool-*; do
        [ -d "$d" ] || continue
        kill -0 "${d##*-}" 2>/dev/null || rm -rf "$d"
    done
done
