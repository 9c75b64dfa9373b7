#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and all tests (unit tests of
# every crate, then the end-to-end suite against real plugin components,
# then Schemathesis against the served OpenAPI document).
#
# With an argument it runs one part (CONTRIBUTING.md, "The checks"):
#   lint            cargo fmt --check, clippy -D warnings, promtool on docs/ops
#   unit            every crate's own tests (no e2e binary, no browser)
#   sdks            the Python and JavaScript SDKs' own tests, mypy, tsc
#   e2e [FILTER]    the end-to-end suite, or the tests matching FILTER
#   dashboard       the dashboard tests in headless Chromium
#   schemathesis    Schemathesis against `stratbox demo`
set -euo pipefail
cd "$(dirname "$0")/.."

part="${1:-all}"
[ $# -gt 0 ] && shift
case "$part" in
    all | lint | unit | sdks | e2e | dashboard | schemathesis) ;;
    *)
        echo "scripts/test.sh: unknown part \`$part\` (expected lint, unit, sdks, e2e, dashboard or schemathesis)" >&2
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

# The toolchains `stratbox plugin build` would install, plus the SDKs'
# test tools, pinned, in the shared build directory (installed once).
need_guest_tools() {
    local py="$STRATBOX_TOOLCHAINS/py" js="$STRATBOX_TOOLCHAINS/js"
    if ! "$py/bin/python" -c 'import pytest, mypy' >/dev/null 2>&1 \
        || ! "$py/bin/componentize-py" --version 2>/dev/null | grep -q 0.25.1; then
        echo "==> installing componentize-py, pytest and mypy into $py"
        python3 -m venv "$py"
        "$py/bin/pip" install -q "componentize-py==0.25.1" "pytest==9.2.0" "mypy==2.4.1"
    fi
    if [ ! -d "$js/node_modules/@bytecodealliance/componentize-js" ] \
        || [ ! -d "$js/node_modules/typescript" ]; then
        echo "==> installing componentize-js and typescript into $js"
        mkdir -p "$js"
        npm install --silent --no-audit --no-fund --prefix "$js" \
            "@bytecodealliance/componentize-js@0.23.0" "typescript@7.0.2"
    fi
}

sdks() {
    need_guest_tools
    local py="$STRATBOX_TOOLCHAINS/py/bin"
    echo "==> pytest: the Python SDK, then each Python strategy (each is a module \`app\`)"
    "$py/python" -m pytest -q -p no:cacheprovider sdk/python/tests
    for dir in plugins/*/python plugins/hostile-python; do
        "$py/python" -m pytest -q -p no:cacheprovider "$dir"
    done
    echo "==> mypy --strict: the Python SDK and strategies"
    "$py/mypy" --strict --no-incremental sdk/python/src
    for dir in plugins/*/python plugins/hostile-python; do
        MYPYPATH=sdk/python/src "$py/mypy" --strict --no-incremental "$dir/app.py"
    done
    echo "==> node --test: the JavaScript SDK (tsc on its examples) and strategies"
    STRATBOX_JS_TOOLCHAIN="$STRATBOX_TOOLCHAINS/js" node --test sdk/js/test/ plugins/*/js/
}

e2e() {
    need_browser
    need_guest_tools
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
    sdks) sdks ;;
    e2e) e2e "$@" ;;
    dashboard) e2e dashboard ;;
    schemathesis) schemathesis ;;
    all)
        need_browser
        need_guest_tools
        lint
        sdks
        echo "==> cargo test"
        cargo test --workspace --locked
        schemathesis
        ;;
esac

echo "==> $part: checks passed"
