#!/usr/bin/env bash
# The strategy author's loop on a fresh machine: build the example
# plugins, generate a year of hourly candles, inspect and backtest.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stratbox-target}"
rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown

echo "==> building stratbox (release; the first build takes a few minutes)"
cargo build --release --locked -p stratbox
STRATBOX="$CARGO_TARGET_DIR/release/stratbox"
DEMO="$CARGO_TARGET_DIR/demo"
mkdir -p "$DEMO"

echo "==> building the example plugins to WebAssembly components"
for plugin in ema-crossover rsi-reversion breakout; do
    "$STRATBOX" plugin build "plugins/$plugin" --target-dir "$CARGO_TARGET_DIR/wasm" --out "$DEMO/$plugin.wasm" >/dev/null
done

echo "==> generating BTCUSDT-like hourly candles for 2024"
"$STRATBOX" candles synth --bars 8784 --seed 2024 --timeframe 1h \
    --start 2024-01-01T00:00:00Z --out "$DEMO/BTCUSDT-1h.csv"

echo
"$STRATBOX" plugin inspect "$DEMO/ema-crossover.wasm"
for plugin in ema-crossover rsi-reversion breakout; do
    echo
    "$STRATBOX" backtest --plugin "$DEMO/$plugin.wasm" --candles "$DEMO/BTCUSDT-1h.csv"
done
echo
echo "==> EMA crossover reversing long/short, as JSON (first 600 bytes of $DEMO/ema-long-short.json):"
"$STRATBOX" backtest --plugin "$DEMO/ema-crossover.wasm" --candles "$DEMO/BTCUSDT-1h.csv" \
    --param fast_period=8 --param slow_period=34 --param allow_short=true --json > "$DEMO/ema-long-short.json"
cut -c1-600 "$DEMO/ema-long-short.json"
echo " ..."
echo
echo "Plugins and candles are in $DEMO."
echo "Try: $STRATBOX backtest --plugin $DEMO/ema-crossover.wasm --candles $DEMO/BTCUSDT-1h.csv --param fast_period=20"
