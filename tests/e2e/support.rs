//! Builds the plugins once per test run and gives each test its own
//! scratch space.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use stratbox_engine::candles::{self, Candles};

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_stratbox"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_path_buf()
}

/// Plugins are built into their own target directory so the nested cargo
/// never waits on the lock of the cargo running the tests.
pub fn wasm_target_dir() -> PathBuf {
    target_dir().join("wasm")
}

/// (crate directory, target) of every plugin the tests use.
const PLUGINS: &[(&str, &str)] = &[
    ("plugins/ema-crossover", "wasm32-unknown-unknown"),
    ("plugins/rsi-reversion", "wasm32-unknown-unknown"),
    ("plugins/breakout", "wasm32-unknown-unknown"),
    ("plugins/funding-aware", "wasm32-unknown-unknown"),
    ("plugins/pairs-spread", "wasm32-unknown-unknown"),
    ("plugins/momentum-rotation", "wasm32-unknown-unknown"),
    ("plugins/hostile/infinite-loop", "wasm32-unknown-unknown"),
    ("plugins/hostile/memory-bomb", "wasm32-unknown-unknown"),
    ("plugins/hostile/deep-recursion", "wasm32-unknown-unknown"),
    ("plugins/hostile/panic", "wasm32-unknown-unknown"),
    ("plugins/hostile/log-flood", "wasm32-unknown-unknown"),
    ("plugins/hostile/wrong-version", "wasm32-unknown-unknown"),
    ("plugins/hostile/fs-import", "wasm32-wasip2"),
    ("plugins/hostile/slow", "wasm32-unknown-unknown"),
    ("plugins/hostile/nan-bits", "wasm32-unknown-unknown"),
    ("plugins/hostile/market-probe", "wasm32-unknown-unknown"),
    (
        "plugins/hostile/portfolio-bad-symbol",
        "wasm32-unknown-unknown",
    ),
];

/// The component built from `plugins/<dir>`, e.g. `plugin("hostile/panic")`.
pub fn plugin(dir: &str) -> PathBuf {
    static BUILT: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let mut built = BTreeMap::new();
        for (crate_dir, target) in PLUGINS {
            let out = Command::new(env!("CARGO_BIN_EXE_stratbox"))
                .args(["plugin", "build"])
                .arg(workspace().join(crate_dir))
                .args(["--target", target, "--target-dir"])
                .arg(wasm_target_dir())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "building {crate_dir} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let path = String::from_utf8(out.stdout).unwrap().trim().to_string();
            let name = crate_dir.trim_start_matches("plugins/").to_string();
            built.insert(name, PathBuf::from(path));
        }
        built
    });
    built
        .get(dir)
        .unwrap_or_else(|| panic!("no plugin {dir}"))
        .clone()
}

pub fn plugin_bytes(dir: &str) -> Vec<u8> {
    std::fs::read(plugin(dir)).unwrap()
}

/// A fresh directory for one test.
pub fn scratch(test: &str) -> PathBuf {
    let dir = target_dir()
        .join("e2e-scratch")
        .join(format!("{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Seeded synthetic candles, written as CSV into `dir`.
pub fn candles_csv(dir: &Path, bars: usize, seed: u64, timeframe_secs: i64) -> (PathBuf, Candles) {
    let data = candles::synth(bars, seed, timeframe_secs, 1_704_067_200, 42_000.0);
    let path = dir.join(format!("candles-{bars}-{seed}-{timeframe_secs}.csv"));
    let mut bytes = Vec::new();
    candles::write_csv(&data, &mut bytes).unwrap();
    std::fs::write(&path, bytes).unwrap();
    (path, data)
}

/// Runs the binary with a private compiled-code cache under `dir`.
pub fn stratbox(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(args)
        .env("STRATBOX_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A loopback port free right now, for a server a test starts.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An HTTP client for the tests. The package links the market data
/// crate, whose TLS feature makes every reqwest client in the process need
/// the rustls provider installed first.
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().unwrap()
}

pub fn http_client_builder() -> reqwest::ClientBuilder {
    stratbox_marketdata::install_tls_provider();
    reqwest::Client::builder()
}
