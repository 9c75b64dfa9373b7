//! Portfolio strategies in Python and JavaScript: the twins of
//! pairs-spread and momentum-rotation, built by `stratbox plugin build`,
//! import only the log and export `portfolio`, and give the Rust
//! example's report, byte for byte (all but the fuel and the component's
//! sha256), over three symbols with gaps in one of them, run by the local
//! command line (docs/languages.md, "Several symbols").
//!
//! Builds and compiled code are shared with the `languages` module (its
//! build cache and compiled-code cache).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use stratbox_engine::candles::{self, Candles};

use super::languages::{guest, shared_cache, trading};
use super::service::p;
use super::support;

/// Hourly bars per symbol.
const BARS: usize = 3_000;

/// Three symbols' CSVs (A, B, C) in `dir`: seeded hourly walks from the
/// same start, B missing a run of 200 bars and every 11th bar from bar 100
/// on, so the timeline has steps where B has no bar (B is the second leg
/// of pairs-spread, and ranked by momentum-rotation).
fn symbols(dir: &Path) -> Vec<(&'static str, PathBuf)> {
    ["A", "B", "C"]
        .into_iter()
        .enumerate()
        .map(|(k, name)| {
            let full = candles::synth(BARS, 70 + k as u64, 3_600, 1_704_067_200, 100.0);
            let mut kept = Candles::with_capacity(BARS);
            for i in 0..full.len() {
                let gap = (1_000..1_200).contains(&i) || (i >= 100 && i % 11 == 0);
                if name == "B" && gap {
                    continue;
                }
                kept.push(
                    full.ts[i],
                    full.open[i],
                    full.high[i],
                    full.low[i],
                    full.close[i],
                    full.volume[i],
                );
            }
            let path = dir.join(format!("{name}.csv"));
            let mut bytes = Vec::new();
            candles::write_csv(&kept, &mut bytes).unwrap();
            std::fs::write(&path, bytes).unwrap();
            (name, path)
        })
        .collect()
}

/// `stratbox backtest --plugin P --symbol A=a.csv ... --json`.
fn report(plugin: &Path, symbols: &[(&str, PathBuf)], params: &[(&str, &str)]) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stratbox"));
    command.args(["backtest", "--plugin", p(plugin), "--json"]);
    for (name, path) in symbols {
        command.arg("--symbol").arg(format!("{name}={}", p(path)));
    }
    for (name, value) in params {
        command.arg("--param").arg(format!("{name}={value}"));
    }
    let out = command
        .env("STRATBOX_CACHE_DIR", shared_cache())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        plugin.display(),
        support::stderr(&out)
    );
    serde_json::from_str(support::stdout(&out).trim()).unwrap()
}

/// `plugin inspect --json`: a portfolio strategy of 0.3.0 importing only
/// the log. componentize-py's components also export an `exports`
/// instance of their own; only the contract's names are checked.
fn assert_imports_only_the_log(plugin: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(["plugin", "inspect", p(plugin), "--json"])
        .env("STRATBOX_CACHE_DIR", shared_cache())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    let info: Value = serde_json::from_str(support::stdout(&out).trim()).unwrap();
    let what = plugin.display();
    assert_eq!(
        info["imports"],
        serde_json::json!(["stratbox:strategy/log@0.3.0"]),
        "{what}"
    );
    let contract: Vec<&str> = info["exports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|name| name.starts_with("stratbox:"))
        .collect();
    assert_eq!(contract, ["stratbox:strategy/portfolio@0.3.0"], "{what}");
    assert_eq!(info["kind"], "portfolio", "{what}");
    assert_eq!(info["contract_version"], "0.3.0", "{what}");
}

/// The example `name` in Rust, Python and JavaScript: the same report.
fn three_languages_agree(name: &str, params: &[(&str, &str)], min_trades: u64) {
    let dir = support::scratch(&format!("portfolio_languages-{name}"));
    let symbols = symbols(&dir);
    let rust = report(&support::plugin(name), &symbols, params);
    let trades = rust["num_trades"].as_u64().unwrap();
    assert!(trades >= min_trades, "{name}: {trades} trades");
    let per_symbol = rust["symbols"].as_array().unwrap();
    assert_eq!(per_symbol.len(), 3, "{name}: {rust}");
    let rust_text = trading(rust).to_string();
    for lang in ["python", "js"] {
        let plugin = guest(&format!("{name}/{lang}"));
        assert_imports_only_the_log(&plugin);
        let text = trading(report(&plugin, &symbols, params)).to_string();
        assert!(text == rust_text, "{name} in {lang} differs from Rust");
    }
}

#[test]
fn pairs_spread_in_python_and_javascript_reports_as_in_rust() {
    assert_imports_only_the_log(&support::plugin("pairs-spread"));
    three_languages_agree(
        "pairs-spread",
        &[("lookback", "48"), ("entry_z", "2.0"), ("exit_z", "0.5")],
        40,
    );
}

#[test]
fn momentum_rotation_in_python_and_javascript_reports_as_in_rust() {
    assert_imports_only_the_log(&support::plugin("momentum-rotation"));
    three_languages_agree(
        "momentum-rotation",
        &[("lookback", "48"), ("rebalance", "12"), ("top_k", "1")],
        40,
    );
}
