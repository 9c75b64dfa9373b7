#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and all tests (unit tests of
# every crate, then the end-to-end suite against real plugin components,
# then Schemathesis against the served OpenAPI document).
#
# With an argument it runs one part (CONTRIBUTING.md, "The checks"):
#   lint            cargo fmt --check, clippy -D warnings, promtool on docs/ops
#   unit            every crate's own tests (no e2e binary, no browser)
#   e2e [FILTER]    the end-to-end suite, or the tests matching FILTER
#   dashboard       the dashboard tests in headless Chromium
#   schemathesis    Schemathesis against `stratbox demo`
set -euo pipefail
cd "$(dirname "$0")/.."

part="${1:-all}"
[ $# -gt 0 ] && shift
case "$part" in
    all | lint | unit | e2e | dashboard | schemathesis) ;;
    *)
        echo "scripts/test.sh: unknown part \`$part\` (expected lint, unit, e2e, dashboard or schemathesis)" >&2
        exit 2
        ;;
esac

source scripts/setup.sh

need_browser() {
    # The dashboard tests drive a real headless Chromium.
    apt_need chromedriver chromium chromium-driver
}

need_promtool() {
    # Checks the alert rules of docs/ops, and parses the Grafana board's
    # queries in the API's tests. Debian's prometheus ships it; nothing
    # here starts its service.
    apt_need promtool prometheus
}

lint() {
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
    echo "==> cargo fmt --check"
    cargo fmt --all -- --check
    echo "==> cargo clippy -D warnings"
    cargo clippy --workspace --all-targets --locked -- -D warnings
    need_promtool
    echo "==> promtool check rules, test rules (docs/ops)"
    promtool check rules docs/ops/prometheus-alerts.yml
    promtool test rules docs/ops/prometheus-alerts.test.yml
}

unit() {
    need_promtool
    echo "==> cargo test (every crate's own tests)"
    cargo test --workspace --locked --lib --bins
}

e2e() {
    need_browser
    echo "==> cargo test --test e2e $*"
    cargo test -p stratbox --locked --test e2e -- "$@"
}

schemathesis() {
    if [ "$part" = schemathesis ]; then
        # Alone, it needs what the e2e suite would have built: the debug
        # binary and the example plugin.
        cargo build -p stratbox --locked
        "$CARGO_TARGET_DIR/debug/stratbox" plugin build plugins/ema-crossover \
            --target-dir "$CARGO_TARGET_DIR/wasm" >/dev/null
    fi
    echo "==> schemathesis against the served OpenAPI document"
    bash scripts/schemathesis.sh
}

case "$part" in
    lint) lint ;;
    unit) unit ;;
    e2e) e2e "$@" ;;
    dashboard) e2e dashboard ;;
    schemathesis) schemathesis ;;
    all)
        need_browser
        lint
        echo "==> cargo test"
        cargo test --workspace --locked
        schemathesis
        ;;
esac

echo "==> $part: checks passed"
