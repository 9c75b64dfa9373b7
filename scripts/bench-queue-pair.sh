#!/usr/bin/env bash
# Compares two builds of stratbox on `stratbox bench queue` by running them
# at the same time, each with its own private Redis and worker, ROUNDS
# times. On a shared host a build measured after another meets a different
# machine (the same binary moved 50 % between runs here); two runs side by
# side meet the same one, so their CPU per task can be compared. Rates are
# halved by the sharing; compare the CPU lines.
#
#   scripts/bench-queue-pair.sh OLD_BINARY NEW_BINARY [ROUNDS] [-- BENCH ARGS]
#
# Default bench args: 30,000 backtests and 20,000 probe tasks per kind.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
    echo "usage: $0 OLD_BINARY NEW_BINARY [ROUNDS] [-- BENCH ARGS]" >&2
    exit 2
fi
OLD=$1
NEW=$2
shift 2
ROUNDS=3
if [ $# -gt 0 ] && [ "$1" != "--" ]; then
    ROUNDS=$1
    shift
fi
[ "${1:-}" = "--" ] && shift
ARGS=("$@")
if [ ${#ARGS[@]} -eq 0 ]; then
    ARGS=(--tasks 1000 --backtests 30000 --latency-samples 10 --ceiling-requests 1000 --probe-tasks 20000)
fi
for bin in "$OLD" "$NEW"; do
    [ -x "$bin" ] || { echo "$bin: not an executable" >&2; exit 2; }
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stratbox-target}"
WASM="$CARGO_TARGET_DIR/wasm/plugins/ema-crossover.wasm"
if [ ! -f "$WASM" ]; then
    WASM=$("$NEW" plugin build plugins/ema-crossover --target-dir "$CARGO_TARGET_DIR/wasm")
fi
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for round in $(seq 1 "$ROUNDS"); do
    "$OLD" bench queue --plugin "$WASM" "${ARGS[@]}" > "$OUT/old" 2>&1 &
    old_pid=$!
    "$NEW" bench queue --plugin "$WASM" "${ARGS[@]}" > "$OUT/new" 2>&1 &
    new_pid=$!
    wait "$old_pid" || { cat "$OUT/old" >&2; exit 1; }
    wait "$new_pid" || { cat "$OUT/new" >&2; exit 1; }
    for side in old new; do
        echo "round $round $side:"
        grep -E "end to end|CPU per|script alone" "$OUT/$side" | sed 's/^ */    /'
    done
done
