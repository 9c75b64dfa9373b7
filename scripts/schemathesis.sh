#!/usr/bin/env bash
# Fuzzes the served OpenAPI document with Schemathesis (from PyPI): no 5xx,
# and every response matches its documented status, content type and
# schema. The server is `stratbox demo` (private Redis, API, two workers,
# a strategy and a year of candles loaded), so valid requests reach the
# queue too. Run by test.sh after the cargo tests built the binary and
# the example plugin.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stratbox-target}"

SCHEMATHESIS_VERSION=4.32.5
VENV="$HOME/.cache/stratbox-venv"
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "==> installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
    if ! python3 -m venv --help >/dev/null 2>&1; then
        if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    fi
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

STRATBOX="$CARGO_TARGET_DIR/debug/stratbox"
PLUGIN="$CARGO_TARGET_DIR/wasm/plugins/ema-crossover.wasm"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
LOG=$(mktemp -d)
env -u REDIS_URL -u STRATBOX_API_TOKEN "$STRATBOX" demo --plugin "$PLUGIN" \
    --addr "127.0.0.1:$PORT" --data-dir "$LOG/data" >"$LOG/demo.out" 2>&1 &
DEMO=$!
trap 'kill -INT $DEMO 2>/dev/null; wait $DEMO 2>/dev/null; rm -rf "$LOG"' EXIT
for _ in $(seq 1 600); do
    grep -q "Ctrl-C" "$LOG/demo.out" && break
    kill -0 $DEMO 2>/dev/null || { cat "$LOG/demo.out"; exit 1; }
    sleep 0.1
done

# Its cache directory goes to the scratch dir, not the clone.
cd "$LOG"
"$VENV/bin/schemathesis" run "http://127.0.0.1:$PORT/api-docs/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing --max-examples 100 --seed 20261128 \
    --generation-database none --no-color --warnings off
