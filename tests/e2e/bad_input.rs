//! Bad input: a clear error naming the line, field or flag, a non-zero
//! exit, and nothing printed on standard output (nothing half-written).

use std::path::Path;

use crate::support::{candles_csv, path_str, plugin, scratch, stderr, stratbox};

const HEADER: &str = "ts,open,high,low,close,volume\n";

fn backtest_with_csv(dir: &Path, csv: &str) -> std::process::Output {
    let path = dir.join("bad.csv");
    std::fs::write(&path, csv).unwrap();
    let plugin = plugin("ema-crossover");
    stratbox(
        dir,
        &[
            "backtest",
            "--plugin",
            path_str(&plugin),
            "--candles",
            path_str(&path),
            "--json",
        ],
    )
}

fn assert_fails(out: &std::process::Output, needles: &[&str]) {
    assert!(!out.status.success(), "expected a failure");
    assert_eq!(
        out.status.code(),
        Some(2),
        "bad input exits 2: {}",
        stderr(out)
    );
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    let err = stderr(out);
    for needle in needles {
        assert!(err.contains(needle), "stderr lacks `{needle}`:\n{err}");
    }
}

#[test]
fn csv_errors_name_the_line_and_column() {
    let dir = scratch("bad-csv");
    let cases: &[(&str, String, &[&str])] = &[
        (
            "ts out of order",
            format!("{HEADER}1704067200,1,2,0.5,1.5,10\n1704070800,1,2,0.5,1.5,10\n1704067200,1,2,0.5,1.5,10\n"),
            &["line 4", "ts"],
        ),
        (
            "high below low",
            format!("{HEADER}1704067200,1,2,0.5,1.5,10\n1704070800,1,0.4,0.5,0.45,10\n"),
            &["line 3", "high"],
        ),
        ("missing column", "ts,open,high,low,close\n1704067200,1,2,0.5,1.5\n".into(), &["line 1", "volume"]),
        (
            "non-numeric field",
            format!("{HEADER}1704067200,1,2,0.5,abc,10\n"),
            &["line 2", "close", "abc"],
        ),
        ("empty file", String::new(), &["empty"]),
    ];
    for (what, csv, needles) in cases {
        let out = backtest_with_csv(&dir, csv);
        assert_fails(&out, needles);
        assert!(
            stderr(&out).contains("bad.csv"),
            "{what}: the file is named"
        );
    }
}

#[test]
fn param_errors_name_the_param() {
    let dir = scratch("bad-params");
    let (csv, _) = candles_csv(&dir, 500, 1, 3_600);
    let plugin = plugin("ema-crossover");
    let cases: &[(&str, &[&str])] = &[
        (
            "fastest=3",
            &[
                "unknown param `fastest`",
                "fast_period, slow_period, allow_short",
            ],
        ),
        ("fast_period=0", &["fast_period", "below its minimum 1"]),
        ("fast_period=100000", &["fast_period", "above its maximum"]),
        (
            "fast_period=twelve",
            &["fast_period", "must be int", "twelve"],
        ),
        ("allow_short=perhaps", &["allow_short", "must be bool"]),
        ("fast_period", &["expected NAME=VALUE"]),
    ];
    for (param, needles) in cases {
        let out = stratbox(
            &dir,
            &[
                "backtest",
                "--plugin",
                path_str(&plugin),
                "--candles",
                path_str(&csv),
                "--param",
                param,
                "--json",
            ],
        );
        assert_fails(&out, needles);
    }
}

#[test]
fn account_flags_are_checked() {
    let dir = scratch("bad-flags");
    let (csv, _) = candles_csv(&dir, 500, 1, 3_600);
    let plugin = plugin("ema-crossover");
    for (flag, value) in [
        ("--capital", "-5"),
        ("--commission", "0.5"),
        ("--leverage", "0"),
    ] {
        let out = stratbox(
            &dir,
            &[
                "backtest",
                "--plugin",
                path_str(&plugin),
                "--candles",
                path_str(&csv),
                &format!("{flag}={value}"),
                "--json",
            ],
        );
        assert_fails(&out, &[flag]);
    }
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let dir = scratch("bad-plugin");
    let (csv, _) = candles_csv(&dir, 500, 1, 3_600);
    let fake = dir.join("strategy.wasm");
    std::fs::write(&fake, "def strategy(): pass\n").unwrap();
    let out = stratbox(
        &dir,
        &[
            "backtest",
            "--plugin",
            path_str(&fake),
            "--candles",
            path_str(&csv),
            "--json",
        ],
    );
    assert_fails(&out, &["strategy.wasm", "not a WebAssembly file"]);
    let missing = stratbox(
        &dir,
        &[
            "backtest",
            "--plugin",
            "/nonexistent.wasm",
            "--candles",
            path_str(&csv),
        ],
    );
    assert_fails(&missing, &["/nonexistent.wasm"]);
}

#[test]
fn synth_writes_whole_files_only() {
    let dir = scratch("synth");
    let out_path = dir.join("c.csv");
    let ok = stratbox(
        &dir,
        &[
            "candles",
            "synth",
            "--bars",
            "100",
            "--seed",
            "4",
            "--timeframe",
            "1m",
            "--out",
            path_str(&out_path),
        ],
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    let again = dir.join("d.csv");
    stratbox(
        &dir,
        &[
            "candles",
            "synth",
            "--bars",
            "100",
            "--seed",
            "4",
            "--timeframe",
            "1m",
            "--out",
            path_str(&again),
        ],
    );
    assert_eq!(
        std::fs::read(&out_path).unwrap(),
        std::fs::read(&again).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(&out_path).unwrap().lines().count(),
        101
    );
    let bad = stratbox(
        &dir,
        &[
            "candles",
            "synth",
            "--timeframe",
            "fortnight",
            "--out",
            path_str(&dir.join("e.csv")),
        ],
    );
    assert_fails(&bad, &["--timeframe"]);
    assert!(!dir.join("e.csv").exists());
}

#[test]
fn a_reader_that_stops_early_is_not_an_error() {
    use std::io::Read;
    use std::process::{Command, Stdio};
    let dir = scratch("broken-pipe");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(["candles", "synth", "--bars", "200000"])
        .env("STRATBOX_CACHE_DIR", dir.join("cache"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    // Dropping our end closes the pipe, like `| head -c 64`.
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert!(head.starts_with(b"ts,open,high,low,close,volume"));
}
