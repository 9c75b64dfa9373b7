//! `stratbox plugin new`: a scaffolded crate passes its own native test,
//! builds to a component and backtests, with no edits.

use std::process::Command;

use crate::support::{candles_csv, path_str, scratch, stderr, stdout, stratbox, wasm_target_dir};

#[test]
fn a_scaffolded_strategy_tests_builds_and_backtests() {
    let dir = scratch("scaffold");
    let crate_dir = dir.join("my-first-strategy");
    let out = stratbox(&dir, &["plugin", "new", path_str(&crate_dir)]);
    assert!(out.status.success(), "{}", stderr(&out));

    let test = Command::new("cargo")
        .args(["test", "--quiet", "--manifest-path"])
        .arg(crate_dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", wasm_target_dir())
        .output()
        .unwrap();
    assert!(
        test.status.success(),
        "{}",
        String::from_utf8_lossy(&test.stderr)
    );
    assert!(String::from_utf8_lossy(&test.stdout).contains("1 passed"));

    let build = stratbox(
        &dir,
        &[
            "plugin",
            "build",
            path_str(&crate_dir),
            "--target-dir",
            path_str(&wasm_target_dir()),
            "--out",
            path_str(&dir.join("mine.wasm")),
        ],
    );
    assert!(build.status.success(), "{}", stderr(&build));
    let (csv, _) = candles_csv(&dir, 3_000, 8, 3_600);
    let run = stratbox(
        &dir,
        &[
            "backtest",
            "--plugin",
            path_str(&dir.join("mine.wasm")),
            "--candles",
            path_str(&csv),
            "--json",
        ],
    );
    assert!(run.status.success(), "{}", stderr(&run));
    let report: serde_json::Value = serde_json::from_str(&stdout(&run)).unwrap();
    assert_eq!(report["strategy"]["name"], "my-first-strategy");
    assert!(report["num_trades"].as_u64().unwrap() > 0);

    let again = stratbox(&dir, &["plugin", "new", path_str(&crate_dir)]);
    assert_eq!(again.status.code(), Some(2));
    assert!(stderr(&again).contains("already exists"));
    let bad = stratbox(&dir, &["plugin", "new", path_str(&dir.join("Bad Name"))]);
    assert_eq!(bad.status.code(), Some(2));
}
