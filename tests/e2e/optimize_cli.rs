//! `stratbox optimize`: every combination of a grid is exactly the report
//! of a plain `stratbox backtest` with those params; the random and bayes
//! methods are reproducible to the byte; a walk-forward's windows choose
//! what a plain optimization of their train bars ranks first; bad flags
//! say which flag and why.

use serde_json::Value;
use std::collections::BTreeSet;

use crate::support::{candles_csv, path_str, plugin, scratch, stderr, stdout, stratbox};

fn json(out: &std::process::Output) -> Value {
    assert!(out.status.success(), "failed: {}", stderr(out));
    serde_json::from_str(&stdout(out)).unwrap()
}

#[test]
fn a_5x5_grid_gives_for_every_combination_the_plain_backtest_report() {
    let dir = scratch("optimize-grid");
    let (csv, _) = candles_csv(&dir, 3_000, 21, 3_600);
    let wasm = plugin("ema-crossover");
    let out = stratbox(
        &dir,
        &[
            "optimize",
            "--plugin",
            path_str(&wasm),
            "--candles",
            path_str(&csv),
            "--range",
            "fast_period=4:20:4",
            "--range",
            "slow_period=30:70:10",
            "--param",
            "allow_short=true",
            "--top",
            "25",
            "--json",
            "--quiet",
        ],
    );
    let result = json(&out);
    assert_eq!(result["combinations"], 25);
    let top = result["top"].as_array().unwrap();
    assert_eq!(top.len(), 25);
    let mut seen = BTreeSet::new();
    for row in top {
        let fast = row["params"]["fast_period"].as_i64().unwrap();
        let slow = row["params"]["slow_period"].as_i64().unwrap();
        assert_eq!(row["params"]["allow_short"], true);
        seen.insert((fast, slow));
        let single = json(&stratbox(
            &dir,
            &[
                "backtest",
                "--plugin",
                path_str(&wasm),
                "--candles",
                path_str(&csv),
                "--param",
                &format!("fast_period={fast}"),
                "--param",
                &format!("slow_period={slow}"),
                "--param",
                "allow_short=true",
                "--json",
            ],
        ));
        assert_eq!(row["report"], single, "fast {fast} slow {slow}");
        // The table's own numbers (from the sweep run, not the re-run for
        // the report) are the same.
        for (metric, value) in row["metrics"].as_object().unwrap() {
            assert_eq!(
                value.as_f64(),
                single[metric].as_f64(),
                "{metric} of fast {fast} slow {slow}"
            );
        }
    }
    let expected: BTreeSet<(i64, i64)> = [4, 8, 12, 16, 20]
        .into_iter()
        .flat_map(|f| [30, 40, 50, 60, 70].map(|s| (f, s)))
        .collect();
    assert_eq!(seen, expected);
    // Ranked best first by Sharpe.
    let sharpes: Vec<f64> = top.iter().filter_map(|r| r["score"].as_f64()).collect();
    assert!(sharpes.windows(2).all(|w| w[0] >= w[1]), "{sharpes:?}");
}

#[test]
fn random_with_the_same_seed_gives_byte_identical_tables() {
    let dir = scratch("optimize-random");
    let (csv, _) = candles_csv(&dir, 2_000, 5, 3_600);
    let wasm = plugin("ema-crossover");
    let run = |name: &str, seed: &str, threads: &str| {
        let path = dir.join(name);
        let out = stratbox(
            &dir,
            &[
                "optimize",
                "--plugin",
                path_str(&wasm),
                "--candles",
                path_str(&csv),
                "--range",
                "fast_period=2:40:2",
                "--range",
                "slow_period=10:200:10",
                "--values",
                "allow_short=true,false",
                "--constraint",
                "fast_period < slow_period",
                "--method",
                "random",
                "--samples",
                "60",
                "--seed",
                seed,
                "--holdout",
                "0.3",
                "--min-trades",
                "3",
                "--threads",
                threads,
                "--csv",
                path_str(&path),
                "--quiet",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        std::fs::read(path).unwrap()
    };
    let a = run("a.csv", "42", "2");
    let b = run("b.csv", "42", "1");
    assert_eq!(a, b);
    let c = run("c.csv", "43", "2");
    assert_ne!(a, c);
    let text = String::from_utf8(a).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 61);
    assert!(
        lines[0].starts_with("rank,index,score,fast_period,slow_period,allow_short,final_equity")
    );
    assert!(lines[0].contains(",oos_sharpe,"));
    for line in &lines[1..] {
        let cells: Vec<&str> = line.split(',').collect();
        let fast: i64 = cells[3].parse().unwrap();
        let slow: i64 = cells[4].parse().unwrap();
        assert!(fast < slow, "{line}");
    }
}

#[test]
fn bayes_with_the_same_seed_gives_byte_identical_tables_and_learns() {
    let dir = scratch("optimize-bayes");
    let (csv, _) = candles_csv(&dir, 3_000, 21, 3_600);
    let wasm = plugin("ema-crossover");
    let run = |name: &str, seed: &str, threads: &str, quiet: bool| {
        let path = dir.join(name);
        let mut args = vec![
            "optimize",
            "--plugin",
            path_str(&wasm),
            "--candles",
            path_str(&csv),
            "--range",
            "fast_period=2:41",
            "--range",
            "slow_period=20:140:5",
            "--constraint",
            "fast_period < slow_period",
            "--method",
            "bayes",
            "--trials",
            "48",
            "--seed",
            seed,
            "--holdout",
            "0.3",
            "--min-trades",
            "3",
            "--threads",
            threads,
            "--csv",
            path_str(&path),
        ];
        if quiet {
            args.push("--quiet");
        }
        let out = stratbox(&dir, &args);
        assert!(out.status.success(), "{}", stderr(&out));
        (std::fs::read(path).unwrap(), stderr(&out))
    };
    let (a, progress) = run("a.csv", "42", "2", false);
    let (b, _) = run("b.csv", "42", "1", true);
    assert_eq!(a, b);
    let (c, _) = run("c.csv", "43", "2", true);
    assert_ne!(a, c);
    // A line per batch of 8 with the trials done and the best so far.
    let lines: Vec<&str> = progress
        .lines()
        .filter(|l| l.starts_with("trials "))
        .collect();
    assert_eq!(lines.len(), 6, "{progress}");
    assert!(
        lines[0].starts_with("trials 8/48, best sharpe "),
        "{progress}"
    );
    assert!(
        lines[5].starts_with("trials 48/48, best sharpe "),
        "{progress}"
    );
    assert!(progress.contains("48 trials in"), "{progress}");
    assert!(progress.contains("ms per trial"), "{progress}");
    let text = String::from_utf8(a).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), 48);
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    assert_eq!(
        &header[..5],
        ["rank", "index", "score", "fast_period", "slow_period"]
    );
    let mut seen = BTreeSet::new();
    for cells in &rows {
        let (fast, slow): (i64, i64) = (cells[3].parse().unwrap(), cells[4].parse().unwrap());
        assert!(fast < slow, "{cells:?}");
        assert!(seen.insert((fast, slow)), "{fast} {slow} twice");
    }
    let mut indices: Vec<usize> = rows.iter().map(|c| c[1].parse().unwrap()).collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..48).collect::<Vec<_>>());
    // The searched trials are better than the random startup: the best of
    // the last 16 beats the median of the first 16.
    let sharpe = header.iter().position(|h| *h == "sharpe").unwrap();
    let by_index = |range: std::ops::Range<usize>| -> Vec<f64> {
        rows.iter()
            .filter(|c| range.contains(&c[1].parse::<usize>().unwrap()))
            .filter_map(|c| c[sharpe].parse().ok())
            .collect()
    };
    let mut first = by_index(0..16);
    first.sort_by(f64::total_cmp);
    let late_best = by_index(32..48).into_iter().fold(f64::MIN, f64::max);
    assert!(late_best > first[first.len() / 2], "{late_best} {first:?}");
}

#[test]
fn bad_flags_name_the_flag_and_exit_2() {
    let dir = scratch("optimize-bad");
    let (csv, _) = candles_csv(&dir, 500, 1, 3_600);
    let wasm = plugin("ema-crossover");
    let base = [
        "optimize",
        "--plugin",
        path_str(&wasm),
        "--candles",
        path_str(&csv),
    ];
    let cases: &[(&[&str], &str)] = &[
        (
            &["--range", "nope=1:5"],
            "--range nope: unknown param `nope`",
        ),
        (
            &["--range", "fast_period=0:5:1"],
            "--range fast_period (min): 0 is below the schema's minimum 1",
        ),
        (
            &["--range", "fast_period=1:5:0"],
            "--range fast_period (step): must be above 0",
        ),
        (
            &["--range", "fast_period=1:5:x"],
            "--range fast_period: `x` is not a number",
        ),
        (&["--values", "allow_short=maybe"], "--values allow_short"),
        (
            &[
                "--range",
                "fast_period=1:1000",
                "--range",
                "slow_period=1:100",
            ],
            "--range/--values: the grid has 100000 combinations, more than the limit of 20000",
        ),
        (
            &["--range", "fast_period=1:5", "--objective", "sharp"],
            "--objective: unknown metric `sharp`",
        ),
        (
            &[
                "--range",
                "fast_period=1:5",
                "--constraint",
                "fast_period < slow",
            ],
            "--constraint: unknown param `slow`",
        ),
        (
            &[
                "--range",
                "fast_period=1:5",
                "--holdout",
                "2030-01-01T00:00:00Z",
            ],
            "--holdout: 1893456000 is outside the candles",
        ),
        (
            &[
                "--range",
                "fast_period=1:5",
                "--walk-forward",
                "train=9x,test=5",
            ],
            "--walk-forward (train): `9x` is neither a number of bars nor a duration",
        ),
        (
            &["--range", "fast_period=1:5", "--walk-forward", "train=100"],
            "--walk-forward (test): is required",
        ),
        (
            &[
                "--range",
                "fast_period=1:5",
                "--walk-forward",
                "train=10d,test=5d,step=2d",
            ],
            "--walk-forward (step): must equal test (120 bars), got 48",
        ),
        (
            &[
                "--range",
                "fast_period=1:5",
                "--walk-forward",
                "train=30d,test=5d",
            ],
            "--walk-forward (train): 720 bars leave nothing to test in the 500 bars loaded",
        ),
        (
            &[
                "--range",
                "fast_period=1:5",
                "--walk-forward",
                "train=100,test=90m",
            ],
            "--walk-forward (test): 90m is not a whole number of 1h bars",
        ),
        (
            &[
                "--range",
                "fast_period=1:5",
                "--walk-forward",
                "train=100,test=50",
                "--holdout",
                "0.2",
            ],
            "cannot be used with",
        ),
        (
            &["--range", "fast_period=1:5", "--method", "random"],
            "--samples: the random method needs a number of samples",
        ),
        (
            &["--range", "fast_period=1:5", "--samples", "3"],
            "--samples: only the random method",
        ),
        (
            &["--range", "fast_period=1:5", "--param", "fast_period=3"],
            "is also given as a fixed param",
        ),
        (
            &["--range", "fast_period=1:5", "--method", "bayes"],
            "--trials: the bayes method needs a number of trials",
        ),
        (
            &["--range", "fast_period=1:5", "--trials", "3"],
            "--trials: only the bayes method takes trials",
        ),
        (
            &[
                "--range",
                "fast_period=1:5",
                "--method",
                "bayes",
                "--trials",
                "0",
            ],
            "--trials: must be at least 1",
        ),
        (
            &[
                "--range",
                "fast_period=1:5",
                "--method",
                "bayes",
                "--trials",
                "30",
                "--max-combinations",
                "20",
            ],
            "--trials: 30 is more than the limit of 20",
        ),
        (
            &[
                "--range",
                "fast_period=1:5",
                "--method",
                "bayes",
                "--trials",
                "3",
                "--batch",
                "0",
            ],
            "--batch: must be at least 1",
        ),
        (
            &[
                "--range",
                "fast_period=1:5",
                "--method",
                "bayes",
                "--trials",
                "3",
                "--constraint",
                "fast_period > 5",
            ],
            "--constraint: no combination of the search space satisfies it",
        ),
    ];
    for (extra, needle) in cases {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        let out = stratbox(&dir, &args);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{extra:?}: {}", stderr(&out));
        assert!(stdout(&out).is_empty());
    }
}

/// The rows of `csv` (a candle file) from bar `from` to bar `to`
/// (exclusive), with its header.
fn bars_csv(
    dir: &std::path::Path,
    csv: &std::path::Path,
    from: usize,
    to: usize,
) -> std::path::PathBuf {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for line in lines.skip(from).take(to - from) {
        out.push_str(line);
        out.push('\n');
    }
    let path = dir.join(format!("bars-{from}-{to}.csv"));
    std::fs::write(&path, out).unwrap();
    path
}

#[test]
fn walk_forward_windows_choose_what_their_train_bars_rank_first() {
    let dir = scratch("optimize-walk-forward");
    let (csv, candles) = candles_csv(&dir, 2_600, 8, 3_600);
    let wasm = plugin("ema-crossover");
    let args = [
        "optimize",
        "--plugin",
        path_str(&wasm),
        "--candles",
        path_str(&csv),
        "--range",
        "fast_period=5:20:5",
        "--values",
        "slow_period=30,60",
        "--objective",
        "total_return_pct",
        "--walk-forward",
        "train=1000,test=25d",
        "--json",
        "--quiet",
    ];
    let first = stratbox(&dir, &args);
    let report = json(&first);
    // Same inputs, same bytes.
    assert_eq!(stdout(&first), stdout(&stratbox(&dir, &args)));
    assert_eq!(report["train_bars"], 1_000);
    assert_eq!(report["test_bars"], 600);
    let windows = report["windows"].as_array().unwrap();
    // 1,600 bars to test: 600, 600 and the last 400.
    assert_eq!(windows.len(), 3);
    let mut next = candles.ts[1_000];
    for (k, w) in windows.iter().enumerate() {
        assert_eq!(w["test"]["start_ts"], next);
        assert_eq!(w["test"]["bars"], if k < 2 { 600 } else { 400 });
        assert_eq!(w["train"]["bars"], 1_000);
        assert_eq!(w["combinations"], 8);
        next = w["test"]["end_ts"].as_i64().unwrap() + 3_600;
        // The choice is the rank-1 row of a plain optimization of the
        // window's train bars, with its very metrics.
        let from = k * 600;
        let train = bars_csv(&dir, &csv, from, from + 1_000);
        let plain = json(&stratbox(
            &dir,
            &[
                "optimize",
                "--plugin",
                path_str(&wasm),
                "--candles",
                path_str(&train),
                "--range",
                "fast_period=5:20:5",
                "--values",
                "slow_period=30,60",
                "--objective",
                "total_return_pct",
                "--top",
                "1",
                "--json",
                "--quiet",
            ],
        ));
        let best = &plain["top"][0];
        let chosen = &w["chosen"];
        assert_eq!(chosen["params"], best["params"], "window {k}");
        assert_eq!(chosen["in_sample"], best["metrics"], "window {k}");
        assert_eq!(chosen["score"], best["score"], "window {k}");
    }
    assert_eq!(next, candles.ts[2_599] + 3_600);
    let stitched = &report["stitched"];
    assert_eq!(stitched["bars"], 1_600);
    assert_eq!(stitched["start_ts"], candles.ts[1_000]);
    assert_eq!(stitched["initial_capital"], 10_000.0);
    assert_eq!(stitched["strategy"]["name"], "EMA Crossover");
    assert_eq!(stitched["strategy"]["params"], serde_json::json!({}));
    // The efficiency is its formula over the report's own figures.
    let is_mean = windows
        .iter()
        .map(|w| {
            w["chosen"]["in_sample"]["total_return_pct"]
                .as_f64()
                .unwrap()
                * 8_760.0
                / 1_000.0
        })
        .sum::<f64>()
        / 3.0;
    let oos = stitched["total_return_pct"].as_f64().unwrap() * 8_760.0 / 1_600.0;
    assert!((report["in_sample_annualized_return_pct"].as_f64().unwrap() - is_mean).abs() < 1e-9);
    assert!(
        (report["out_of_sample_annualized_return_pct"]
            .as_f64()
            .unwrap()
            - oos)
            .abs()
            < 1e-9
    );
    match report["efficiency"].as_f64() {
        Some(e) => assert!((e - oos / is_mean).abs() < 1e-9),
        None => assert!(is_mean <= 0.0),
    }
    // Without --json: a row per window, then the stitched figures.
    let text = stdout(&stratbox(&dir, &args[..args.len() - 2]));
    assert_eq!(text.lines().count(), 1 + 3 + 2, "{text}");
    assert!(text.contains("stitched out of sample: 1600 bars"), "{text}");
    assert!(text.contains("walk-forward efficiency"), "{text}");
}
