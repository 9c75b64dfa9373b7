#!/usr/bin/env bash
# Compares two builds of stratbox on the queue bench (host/cli/benches/
# queue.rs) by running them at the same time, each with its own private
# Redis and worker, ROUNDS times. On a shared host a build measured after
# another meets a different machine (the same binary moved 50 % between
# runs here); two runs side by side meet the same one, so their CPU per
# task can be compared. Rates are halved by the sharing; compare the CPU
# lines.
#
#   scripts/bench-queue-pair.sh OLD_CHECKOUT NEW_CHECKOUT [ROUNDS] [-- BENCH ARGS]
#
# Each side is a checkout of the workspace (e.g. `git worktree add
# ../stratbox-old main`). The script builds, in each, the release binary
# and the queue bench executable, copies both aside (the two builds share
# CARGO_TARGET_DIR, where the second would overwrite the first's binary),
# and runs each side's bench against its own binary (`--stratbox`): the
# submitting client is the bench's code, the worker the binary's, so both
# come from the same build. A checkout from before the benches left the
# binary (no host/cli/benches/queue.rs) runs `stratbox bench queue`.
#
# Default bench args: 30,000 backtests and 20,000 probe tasks per kind.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 OLD_CHECKOUT NEW_CHECKOUT [ROUNDS] [-- BENCH ARGS]" >&2
    exit 2
fi
for tree in "$1" "$2"; do
    [ -f "$tree/Cargo.toml" ] || { echo "$tree: not a checkout of the workspace" >&2; exit 2; }
done
OLD=$(cd "$1" && pwd)
NEW=$(cd "$2" && pwd)
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
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stratbox-target}"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT

# build SIDE TREE: leaves $OUT/SIDE/stratbox and, when the checkout has
# the queue bench, $OUT/SIDE/queue.
build() {
    local side=$1 tree=$2 exe
    mkdir -p "$OUT/$side"
    echo "==> building $side ($tree)" >&2
    (cd "$tree" && cargo build --release --locked -p stratbox >&2)
    cp "$CARGO_TARGET_DIR/release/stratbox" "$OUT/$side/stratbox"
    if [ -f "$tree/host/cli/benches/queue.rs" ]; then
        exe=$(cd "$tree" && cargo bench --locked -p stratbox --bench queue --no-run \
            --message-format json-render-diagnostics |
            python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "queue" and m.get("executable"):
        print(m["executable"])')
        [ -n "$exe" ] || { echo "$tree: no queue bench executable built" >&2; exit 1; }
        cp "$exe" "$OUT/$side/queue"
    fi
}
build old "$OLD"
build new "$NEW"

# run SIDE: the side's queue bench against its own binary.
run() {
    local side=$1
    if [ -x "$OUT/$side/queue" ]; then
        "$OUT/$side/queue" --bench --stratbox "$OUT/$side/stratbox" --plugin "$WASM" "${ARGS[@]}"
    else
        "$OUT/$side/stratbox" bench queue --plugin "$WASM" "${ARGS[@]}"
    fi
}

# The NEW checkout's ema-crossover, built by its binary (cargo does nothing
# when it is current), into this run's directory.
WASM=$("$OUT/new/stratbox" plugin build "$NEW/plugins/ema-crossover" \
    --target-dir "$CARGO_TARGET_DIR/wasm" -o "$OUT/ema-crossover.wasm")
for round in $(seq 1 "$ROUNDS"); do
    run old > "$OUT/old.out" 2>&1 &
    old_pid=$!
    run new > "$OUT/new.out" 2>&1 &
    new_pid=$!
    wait "$old_pid" || { cat "$OUT/old.out" >&2; exit 1; }
    wait "$new_pid" || { cat "$OUT/new.out" >&2; exit 1; }
    for side in old new; do
        echo "round $round $side:"
        grep -E "end to end|CPU per|script alone" "$OUT/$side.out" | sed 's/^ */    /'
    done
done
