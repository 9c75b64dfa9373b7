#!/usr/bin/env bash
# The whole service on this machine: builds stratbox and the example
# plugin, then `stratbox demo` starts a private Redis (unless REDIS_URL is
# set), the API and two workers, uploads ema-crossover, imports 2024
# hourly BTCUSDT candles, runs the reference create-and-run request over HTTP
# and prints the report and where to look. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "==> building stratbox (release; the first build takes a few minutes)"
cargo build --release --locked -p stratbox
STRATBOX="$CARGO_TARGET_DIR/release/stratbox"

mkdir -p "$CARGO_TARGET_DIR/demo"
echo "==> building the example plugin to a WebAssembly component"
"$STRATBOX" plugin build plugins/ema-crossover --target-dir "$CARGO_TARGET_DIR/wasm" \
    --out "$CARGO_TARGET_DIR/demo/ema-crossover.wasm" >/dev/null

PYTHON_ARGS=()
echo "==> building its Python twin (installs componentize-py from PyPI the first time)"
if "$STRATBOX" plugin build plugins/ema-crossover/python \
    --out "$CARGO_TARGET_DIR/demo/ema-crossover-python.wasm" >/dev/null; then
    PYTHON_ARGS=(--python "$CARGO_TARGET_DIR/demo/ema-crossover-python.wasm")
else
    echo "    (skipped: the Python toolchain could not be set up; the Rust demo goes on)"
fi

echo
exec "$STRATBOX" demo --plugin "$CARGO_TARGET_DIR/demo/ema-crossover.wasm" "${PYTHON_ARGS[@]}" "$@"
