# Sourced by demo.sh and test.sh: what a fresh Debian machine with Rust
# from rustup needs before the first build.

# Builds are shared between clones and CI runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/stratbox-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

echo "==> toolchain targets"
rustup target add wasm32-unknown-unknown wasm32-wasip2 >/dev/null 2>&1 \
    || rustup target add wasm32-unknown-unknown wasm32-wasip2

# Services and tests start their own redis-server (loopback, a free port).
if ! command -v redis-server >/dev/null 2>&1; then
    echo "==> installing redis-server"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
# Debian starts a system-wide redis on install; nothing here uses it.
