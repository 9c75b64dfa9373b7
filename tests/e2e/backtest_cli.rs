//! `stratbox backtest`: the plugin against its native reference, the
//! report's shape, determinism, and every example plugin trading.

use serde_json::Value;
use stratbox_engine::reference;
use stratbox_engine::{self as engine, BacktestConfig, ParamValue, Params};

use crate::support::{candles_csv, path_str, plugin, scratch, stderr, stdout, stratbox};

fn report_json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "backtest failed: {}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap()
}

/// The native reference through the same engine, as JSON.
fn native_report(candles: &stratbox_engine::candles::Candles, allow_short: bool) -> Value {
    native_report_with(candles, allow_short, &BacktestConfig::default())
}

fn native_report_with(
    candles: &stratbox_engine::candles::Candles,
    allow_short: bool,
    config: &BacktestConfig,
) -> Value {
    let schema = reference::schema("ema-crossover").unwrap();
    let inputs = [(
        "allow_short".to_string(),
        engine::ParamInput::Text(allow_short.to_string()),
    )]
    .into();
    let params = Params::validate(&schema.params, &inputs).unwrap();
    assert_eq!(
        params.get("allow_short"),
        Some(ParamValue::Bool(allow_short))
    );
    let mut strategy = reference::build("ema-crossover", &params).unwrap();
    let report = engine::run_backtest(candles, strategy.as_mut(), config).unwrap();
    serde_json::to_value(report).unwrap()
}

fn assert_same_run(wasm: &Value, native: &Value) {
    for (key, value) in wasm.as_object().unwrap() {
        if key == "strategy" || key == "fuel_used" {
            continue;
        }
        assert_eq!(
            value, &native[key],
            "field {key} differs between wasm and native"
        );
    }
    assert_eq!(
        wasm["final_equity"].as_f64().unwrap().to_bits(),
        native["final_equity"].as_f64().unwrap().to_bits()
    );
}

#[test]
fn ema_crossover_plugin_equals_native_reference_long_only() {
    let dir = scratch("parity-long");
    let (csv, candles) = candles_csv(&dir, 20_000, 11, 3_600);
    let plugin = plugin("ema-crossover");
    let wasm = report_json(&stratbox(
        &dir,
        &[
            "backtest",
            "--plugin",
            path_str(&plugin),
            "--candles",
            path_str(&csv),
            "--json",
        ],
    ));
    let native = native_report(&candles, false);
    assert!(
        wasm["num_trades"].as_u64().unwrap() > 50,
        "too few trades to compare"
    );
    assert_same_run(&wasm, &native);
    assert!(wasm["fuel_used"].as_u64().unwrap() > 0);
}

#[test]
fn ema_crossover_plugin_equals_native_reference_with_shorts() {
    let dir = scratch("parity-short");
    let (csv, candles) = candles_csv(&dir, 20_000, 12, 3_600);
    let plugin = plugin("ema-crossover");
    let wasm = report_json(&stratbox(
        &dir,
        &[
            "backtest",
            "--plugin",
            path_str(&plugin),
            "--candles",
            path_str(&csv),
            "--param",
            "allow_short=true",
            "--json",
        ],
    ));
    let native = native_report(&candles, true);
    let trades = wasm["trades"].as_array().unwrap();
    assert!(trades.iter().any(|t| t["side"] == "short"));
    assert!(trades.iter().any(|t| t["side"] == "long"));
    // Always in the market after the first cross: each exit is the next entry.
    for pair in trades.windows(2) {
        assert_eq!(pair[0]["exit_ts"], pair[1]["entry_ts"]);
        assert_ne!(pair[0]["side"], pair[1]["side"]);
    }
    assert_same_run(&wasm, &native);
}

#[test]
fn report_has_the_spec_fields() {
    let dir = scratch("spec-fields");
    let (csv, _) = candles_csv(&dir, 5_000, 5, 3_600);
    let plugin = plugin("ema-crossover");
    let report = report_json(&stratbox(
        &dir,
        &[
            "backtest",
            "--plugin",
            path_str(&plugin),
            "--candles",
            path_str(&csv),
            "--json",
        ],
    ));
    for field in [
        "final_equity",
        "total_return_pct",
        "buy_and_hold_return_pct",
        "cagr_pct",
        "max_drawdown_pct",
        "max_drawdown_duration_bars",
        "sharpe",
        "sortino",
        "calmar",
        "num_trades",
        "win_rate_pct",
        "profit_factor",
        "avg_trade_pct",
        "best_trade_pct",
        "worst_trade_pct",
        "avg_trade_duration_secs",
        "exposure_pct",
        "fees_paid",
        "fuel_used",
        "open_position",
        "trades",
        "equity_curve",
    ] {
        assert!(report.get(field).is_some(), "missing {field}");
    }
    assert!(report["max_drawdown_pct"].as_f64().unwrap() >= 0.0);
    let trades = report["trades"].as_array().unwrap();
    assert_eq!(trades.len() as u64, report["num_trades"].as_u64().unwrap());
    for trade in trades {
        for field in [
            "entry_ts",
            "exit_ts",
            "side",
            "qty",
            "entry_price",
            "exit_price",
            "pnl",
            "fees",
        ] {
            assert!(trade.get(field).is_some(), "trade lacks {field}");
        }
        assert!(trade["exit_ts"].as_i64() > trade["entry_ts"].as_i64());
    }
    let curve = report["equity_curve"].as_array().unwrap();
    assert!(curve.len() <= 1_000 && curve.len() >= 2);
}

#[test]
fn same_inputs_print_byte_identical_json() {
    let dir = scratch("determinism");
    let (csv, _) = candles_csv(&dir, 10_000, 21, 60);
    let plugin = plugin("ema-crossover");
    let args = [
        "backtest",
        "--plugin",
        path_str(&plugin),
        "--candles",
        path_str(&csv),
        "--param",
        "allow_short=true",
        "--json",
    ];
    // The first run compiles, the second loads the precompiled cache.
    let first = stratbox(&dir, &args);
    let second = stratbox(&dir, &args);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(first.stdout, second.stdout);
    assert!(!first.stdout.is_empty());
}

#[test]
fn summary_is_readable_without_json() {
    let dir = scratch("summary");
    let (csv, _) = candles_csv(&dir, 3_000, 2, 3_600);
    let plugin = plugin("ema-crossover");
    let out = stratbox(
        &dir,
        &[
            "backtest",
            "--plugin",
            path_str(&plugin),
            "--candles",
            path_str(&csv),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "EMA Crossover",
        "final equity",
        "max drawdown",
        "trades",
        "fuel used",
    ] {
        assert!(text.contains(line), "summary lacks {line}:\n{text}");
    }
}

/// rsi-reversion (limit entries, stop-loss) and breakout (stop entries,
/// stop-loss and take-profit) trade on realistic data.
#[test]
fn example_plugins_exercise_every_order_type() {
    let dir = scratch("order-types");
    let (csv, _) = candles_csv(&dir, 20_000, 3, 3_600);
    let mut entries = std::collections::BTreeSet::new();
    let mut exits = std::collections::BTreeSet::new();
    for name in ["ema-crossover", "rsi-reversion", "breakout"] {
        let plugin = plugin(name);
        let report = report_json(&stratbox(
            &dir,
            &[
                "backtest",
                "--plugin",
                path_str(&plugin),
                "--candles",
                path_str(&csv),
                "--json",
            ],
        ));
        let trades = report["trades"].as_array().unwrap();
        assert!(trades.len() > 5, "{name} barely traded");
        for trade in trades {
            entries.insert(trade["entry_reason"].as_str().unwrap().to_string());
            exits.insert(trade["exit_reason"].as_str().unwrap().to_string());
        }
    }
    for reason in ["market", "limit", "stop"] {
        assert!(entries.contains(reason), "no {reason} entry in {entries:?}");
    }
    for reason in ["close_position", "stop_loss", "take_profit"] {
        assert!(exits.contains(reason), "no {reason} exit in {exits:?}");
    }
}

/// The plugin fills its own market orders inside the sandbox (one call per
/// window instead of one per trade); with slippage, leverage and a higher
/// commission the result must still equal the native run to the bit.
#[test]
fn guest_filled_orders_equal_the_engine_with_slippage_and_leverage() {
    let dir = scratch("parity-costs");
    let (csv, candles) = candles_csv(&dir, 20_000, 13, 900);
    let plugin = plugin("ema-crossover");
    let wasm = report_json(&stratbox(
        &dir,
        &[
            "backtest",
            "--plugin",
            path_str(&plugin),
            "--candles",
            path_str(&csv),
            "--param",
            "allow_short=true",
            "--slippage-bps",
            "7.5",
            "--leverage",
            "3",
            "--commission",
            "0.001",
            "--capital",
            "2500",
            "--json",
        ],
    ));
    let config = BacktestConfig {
        initial_capital: 2_500.0,
        commission: 0.001,
        slippage_bps: 7.5,
        leverage: 3.0,
        ..BacktestConfig::default()
    };
    let native = native_report_with(&candles, true, &config);
    assert!(wasm["num_trades"].as_u64().unwrap() > 100);
    assert_same_run(&wasm, &native);
}

/// `stratbox bench` runs end to end on a small size (its own check fails it
/// if WASM and native disagree); timings are not asserted.
#[test]
fn bench_reports_its_figures() {
    let dir = scratch("bench");
    let plugin = plugin("ema-crossover");
    let out = stratbox(
        &dir,
        &[
            "bench",
            "--plugin",
            path_str(&plugin),
            "--bars",
            "5000",
            "--reps",
            "1",
            "--instantiations",
            "5",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let figures: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(figures["bars"], 5000);
    assert!(figures["wasm_fuel_used"].as_u64().unwrap() > 0);
    assert!(figures["compile_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(figures["nan_canonicalization"], "at-observation");
}
