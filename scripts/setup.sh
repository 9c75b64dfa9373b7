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
