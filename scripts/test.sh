#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and all tests (unit tests of
# every crate, then the end-to-end suite against real plugin components).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/setup.sh
# The dashboard test drives a real headless Chromium.
apt_need chromedriver chromium chromium-driver
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo test"
cargo test --workspace --locked

echo "==> schemathesis against the served OpenAPI document"
bash scripts/schemathesis.sh

echo "==> all checks passed"
