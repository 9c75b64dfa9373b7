# Sourced by demo.sh and test.sh: what a fresh Debian machine with Rust
# from rustup needs before the first build.

# Builds are shared between clones and CI runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stratbox-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "==> toolchain targets"
rustup target add wasm32-unknown-unknown wasm32-wasip2 >/dev/null 2>&1 \
    || rustup target add wasm32-unknown-unknown wasm32-wasip2

# Installs Debian packages that are missing: apt_need COMMAND PACKAGE...
apt_need() {
    local command="$1"
    shift
    command -v "$command" >/dev/null 2>&1 && return 0
    echo "==> installing $*"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# Services and tests start their own redis-server (loopback, a free port).
apt_need redis-server redis-server
# Debian starts a system-wide redis on install; nothing here uses it.
# The Redis TLS tests make their CA and certificates with it.
apt_need openssl openssl

# Python and JavaScript strategies: componentize-py (PyPI) and
# componentize-js (npm), installed once into the shared build directory
# by `stratbox plugin build`, and the SDKs' test tools beside them.
export STRATBOX_TOOLCHAINS="${STRATBOX_TOOLCHAINS:-$CARGO_TARGET_DIR/toolchains}"
apt_need node nodejs npm
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
    apt_need __python3_venv__ python3-venv
fi
