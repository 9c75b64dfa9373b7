//! `stratbox backtest --market linear_perpetual`: the issue's story (a 10x
//! long through a 15 % drop is liquidated, not driven below zero), the
//! plugin against the reference, the text report, and bad input.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::{path_str, plugin, scratch, stderr, stdout, stratbox};

/// 62 hourly bars: a slow decline, a jump at bar 20 that crosses EMA 2
/// above EMA 5 (entry at bar 21's open, 101), then a 15 % fall on bar 22
/// and a flat tail.
pub(super) fn story_csv(dir: &Path) -> PathBuf {
    let mut closes: Vec<f64> = (0..20).map(|i| 100.0 - 0.1 * f64::from(i)).collect();
    closes.extend([101.0, 101.0, 85.85]);
    closes.extend(std::iter::repeat_n(85.85, 39));
    assert_eq!(closes.len(), 62);
    let mut text = String::from("ts,open,high,low,close,volume\n");
    let mut prev = closes[0];
    for (i, &close) in closes.iter().enumerate() {
        let open = prev;
        let ts = 1_704_067_200 + 3_600 * i as i64;
        text.push_str(&format!(
            "{ts},{open},{},{},{close},1\n",
            open.max(close),
            open.min(close)
        ));
        prev = close;
    }
    let path = dir.join("story.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "backtest failed: {}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap()
}

fn ema_args<'a>(csv: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "backtest",
        "--reference",
        "ema-crossover",
        "--param",
        "fast_period=2",
        "--param",
        "slow_period=5",
        "--leverage",
        "10",
        "--candles",
        path_str(csv),
    ];
    args.extend_from_slice(extra);
    args
}

fn assert_input_error(out: &Output, needle: &str) {
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2, stderr: {}",
        stderr(out)
    );
    assert!(
        stderr(out).contains(needle),
        "stderr should name `{needle}`: {}",
        stderr(out)
    );
}

#[test]
fn ten_x_long_through_a_fifteen_percent_drop_is_liquidated() {
    let dir = scratch("perp-story");
    let csv = story_csv(&dir);

    let spot = json(&stratbox(&dir, &ema_args(&csv, &["--json"])));
    assert!(spot.get("market").is_none(), "spot report has no market");
    assert!(spot["final_equity"].as_f64().unwrap() < 0.0);

    let perp = json(&stratbox(
        &dir,
        &ema_args(&csv, &["--market", "linear-perpetual", "--json"]),
    ));
    assert_eq!(perp["market"], "linear_perpetual");
    assert_eq!(perp["liquidations"], 1);
    assert_eq!(perp["funding_source"], "none");
    assert_eq!(perp["rejected_orders"], serde_json::json!({}));
    let equity = perp["final_equity"].as_f64().unwrap();
    assert!((0.0..1.0).contains(&equity), "final equity {equity}");
    let trades = perp["trades"].as_array().unwrap();
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0]["exit_reason"], "liquidation");
    assert_eq!(trades[0]["entry_bar"], 21);
    assert_eq!(trades[0]["exit_bar"], 22);
    // Bankruptcy price of a 10x long from 101: 101 x (1 - 1/10).
    assert!((trades[0]["exit_price"].as_f64().unwrap() - 90.9).abs() < 1e-9);

    // Both spellings of the market name the same run.
    let underscored = json(&stratbox(
        &dir,
        &ema_args(&csv, &["--market", "linear_perpetual", "--json"]),
    ));
    assert_eq!(underscored, perp);

    // Mark candles equal to the trade candles change nothing.
    let marked = json(&stratbox(
        &dir,
        &ema_args(
            &csv,
            &[
                "--market",
                "linear_perpetual",
                "--mark",
                path_str(&csv),
                "--json",
            ],
        ),
    ));
    assert_eq!(marked, perp);
}

#[test]
fn text_report_shows_the_perpetual_figures_and_spot_shows_none() {
    let dir = scratch("perp-text");
    let csv = story_csv(&dir);
    let out = stratbox(
        &dir,
        &ema_args(
            &csv,
            &["--market", "linear_perpetual", "--funding-rate", "0.0001"],
        ),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for line in [
        "  market              linear_perpetual",
        "  liquidations                      1",
        "  funding paid ",
        "(constant)",
        "  fees maker / taker ",
        "  rejected orders                none",
        "  liquidated          Long ",
    ] {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    let spot = stdout(&stratbox(&dir, &ema_args(&csv, &[])));
    for word in ["market", "liquidat", "funding", "maker", "rejected"] {
        assert!(!spot.contains(word), "spot text shows `{word}`:\n{spot}");
    }
}

#[test]
fn plugin_and_reference_give_the_same_perpetual_report() {
    let dir = scratch("perp-parity");
    let csv = story_csv(&dir);
    let funding = dir.join("funding.csv");
    // Funding times at 00:00 and 08:00 of the story's first day and at
    // 16:00 on the next, while the position is open (bar 21 = 21:00).
    std::fs::write(
        &funding,
        "ts,rate\n1704067200,0.0001\n1704096000,-0.0002\n1704124800,0.0003\n",
    )
    .unwrap();
    for extra in [
        vec!["--funding-rate", "0.0001"],
        vec!["--funding", path_str(&funding)],
        vec!["--instrument", "bybit-default"],
    ] {
        let mut tail = vec!["--market", "linear_perpetual", "--json"];
        tail.extend(extra.iter().copied());
        let native = json(&stratbox(&dir, &ema_args(&csv, &tail)));
        let mut args = ema_args(&csv, &tail);
        let wasm_path = plugin("ema-crossover");
        args[1] = "--plugin";
        args[2] = path_str(&wasm_path);
        let wasm = json(&stratbox(&dir, &args));
        for (key, value) in native.as_object().unwrap() {
            if key == "strategy" || key == "fuel_used" {
                continue;
            }
            assert_eq!(value, &wasm[key], "{extra:?}: field {key} differs");
        }
        assert_eq!(wasm["liquidations"], 1, "{extra:?}");
        assert!(wasm["fuel_used"].as_u64().unwrap() > 0);
    }
}

#[test]
fn an_instrument_file_applies_and_its_max_leverage_is_enforced() {
    let dir = scratch("perp-instrument");
    let csv = story_csv(&dir);
    let instrument = dir.join("instrument.json");
    std::fs::write(
        &instrument,
        r#"{"tick_size":0.01,"qty_step":1.0,"min_qty":1.0,"max_leverage":5.0,
            "maker_fee":0.0001,"taker_fee":0.0004,
            "risk_tiers":[{"up_to_value":null,"mmr":0.01,"mm_deduction":0.0}]}"#,
    )
    .unwrap();
    let args = |leverage: &'static str| {
        let mut args = ema_args(
            &csv,
            &[
                "--market",
                "linear_perpetual",
                "--instrument",
                path_str(&instrument),
                "--json",
            ],
        );
        args[8] = leverage;
        args
    };
    let report = json(&stratbox(&dir, &args("5")));
    // The report's commission is the instrument's taker fee; quantities
    // floor to its whole-unit step.
    assert_eq!(report["commission"].as_f64(), Some(0.0004));
    let qty = report["trades"][0]["qty"].as_f64().unwrap();
    assert!(qty > 0.0 && qty.fract() == 0.0, "qty {qty}");

    let out = stratbox(&dir, &args("10"));
    assert_input_error(&out, "--leverage");
    assert!(stderr(&out).contains("max_leverage"), "{}", stderr(&out));
}

#[test]
fn bad_perpetual_input_exits_2_naming_the_line_or_flag() {
    let dir = scratch("perp-bad");
    let csv = story_csv(&dir);

    let funding = dir.join("out-of-order.csv");
    std::fs::write(
        &funding,
        "ts,rate\n1704067200,0.0001\n1704096000,0.0001\n1704067200,0.0001\n",
    )
    .unwrap();
    let out = stratbox(
        &dir,
        &ema_args(
            &csv,
            &[
                "--market",
                "linear_perpetual",
                "--funding",
                path_str(&funding),
            ],
        ),
    );
    assert_input_error(&out, "--funding");
    assert!(stderr(&out).contains("line 4"), "{}", stderr(&out));

    let nan = dir.join("nan.csv");
    std::fs::write(&nan, "ts,rate\n1704067200,abc\n").unwrap();
    let out = stratbox(
        &dir,
        &ema_args(
            &csv,
            &["--market", "linear_perpetual", "--funding", path_str(&nan)],
        ),
    );
    assert_input_error(&out, "line 2");

    // Marks that stop 10 bars before the candles do.
    let text = std::fs::read_to_string(&csv).unwrap();
    let short_mark = dir.join("short.mark.csv");
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(&short_mark, lines[..lines.len() - 10].join("\n")).unwrap();
    let out = stratbox(
        &dir,
        &ema_args(
            &csv,
            &[
                "--market",
                "linear_perpetual",
                "--mark",
                path_str(&short_mark),
            ],
        ),
    );
    assert_input_error(&out, "--mark");
    assert!(
        stderr(&out).contains("not the run's 2024-01-01T00:00:00Z to 2024-01-03T13:00:00Z"),
        "{}",
        stderr(&out)
    );

    // Above the engine's bound and above bybit-default's max_leverage 100.
    for leverage in ["200", "110"] {
        let out = stratbox(
            &dir,
            &[
                "backtest",
                "--reference",
                "ema-crossover",
                "--candles",
                path_str(&csv),
                "--market",
                "linear_perpetual",
                "--instrument",
                "bybit-default",
                "--leverage",
                leverage,
            ],
        );
        assert_input_error(&out, "--leverage");
    }

    for flag in [
        vec!["--funding", path_str(&funding)],
        vec!["--funding-rate", "0.0001"],
        vec!["--mark", path_str(&csv)],
        vec!["--instrument", "bybit-default"],
    ] {
        let out = stratbox(&dir, &ema_args(&csv, &flag));
        assert_input_error(&out, flag[0]);
        assert!(stderr(&out).contains("--market"), "{}", stderr(&out));
    }

    let out = stratbox(
        &dir,
        &ema_args(
            &csv,
            &[
                "--market",
                "linear_perpetual",
                "--funding",
                path_str(&funding),
                "--funding-rate",
                "0.0001",
            ],
        ),
    );
    assert_input_error(&out, "--funding");

    let out = stratbox(&dir, &ema_args(&csv, &["--market", "inverse"]));
    assert_input_error(&out, "--market");
}
