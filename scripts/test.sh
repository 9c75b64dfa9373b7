#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and all tests (unit tests of
# every crate, then the end-to-end suite against real plugin components).
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are shared between clones and CI runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stratbox-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "==> toolchain targets"
rustup target add wasm32-unknown-unknown wasm32-wasip2 >/dev/null 2>&1 \
    || rustup target add wasm32-unknown-unknown wasm32-wasip2
rustup component add rustfmt clippy >/dev/null 2>&1 || true

# The queue tests start their own redis-server (loopback, a free port).
if ! command -v redis-server >/dev/null 2>&1; then
    echo "==> installing redis-server"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
# Debian starts a system-wide redis on install; the tests never use it.

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --workspace --locked

echo "==> all checks passed"
