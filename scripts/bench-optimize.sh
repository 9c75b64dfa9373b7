#!/usr/bin/env bash
# The optimization figures: the optimize bench, host/cli/benches/optimize.rs
# (a 1,000-combination grid of ema-crossover over 8,760 hourly bars,
# locally and through the queue with one 2-slot worker, plus the worker's
# peak RSS), then backtesting.py's own Backtest.optimize on the same grid
# and the same CSV (installed from PyPI into a venv under ~/.cache), and
# the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stratbox-target}"
VENV="${STRATBOX_BENCH_VENV:-$HOME/.cache/stratbox-bench-venv}"
OUT="$CARGO_TARGET_DIR/bench-optimize"
mkdir -p "$OUT"

echo "==> building stratbox (release) and the ema-crossover component" >&2
cargo build --release --locked -p stratbox >&2
STRATBOX="$CARGO_TARGET_DIR/release/stratbox"
WASM=$("$STRATBOX" plugin build plugins/ema-crossover --target-dir "$CARGO_TARGET_DIR/wasm")
"$STRATBOX" candles synth --bars 8760 --seed 1 --timeframe 1h --out "$OUT/candles.csv" >&2

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import backtesting' 2>/dev/null; then
    echo "==> installing backtesting.py into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q backtesting >&2
fi

echo "==> cargo bench -p stratbox --bench optimize" >&2
cargo bench --locked -p stratbox --bench optimize -- \
    --plugin "$WASM" --candles "$OUT/candles.csv" --json > "$OUT/stratbox.json"
cat "$OUT/stratbox.json"
echo "==> backtesting.py Backtest.optimize (same grid, same CSV)" >&2
"$VENV/bin/python" scripts/bench-optimize-backtesting.py "$OUT/candles.csv" 2>"$OUT/backtesting.log" > "$OUT/backtesting.json"
cat "$OUT/backtesting.json"

python3 - "$OUT/stratbox.json" "$OUT/backtesting.json" <<'PY'
import json, sys
ours = json.load(open(sys.argv[1]))
theirs = json.load(open(sys.argv[2]))
local, bt = ours["local_wasm_combos_per_sec"], theirs["combos_per_sec"]
print(f"stratbox local (wasm): {local:,.0f} combinations/s ({ours['local_wasm_secs']:.2f} s on "
      f"{ours['threads']} threads; {ours['local_wasm_cpu_ms_per_combo']:.3f} ms CPU per combination)")
if ours.get("queue_combos_per_sec"):
    print(f"stratbox queue, 1 worker x {ours['queue_slots']} slots: "
          f"{ours['queue_combos_per_sec']:,.0f} combinations/s, "
          f"worker peak RSS {ours['worker_peak_rss_mb']:.1f} MB")
print(f"backtesting.py {theirs['backtesting_version']} ({theirs['engine']}): "
      f"{bt:,.1f} combinations/s ({theirs['secs']:.1f} s)")
print(f"ratio stratbox local / backtesting.py: {local / bt:,.0f}x")
PY
