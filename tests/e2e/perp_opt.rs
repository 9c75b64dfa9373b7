//! Perpetual optimizations: through the queue, every chunk runs on the
//! symbol's stored contract, funding history and mark prices (its rows,
//! in sample and held out, are the reports of single perpetual backtests
//! through the API, and its table is `stratbox optimize`'s on the same
//! files); leverage above the stored contract's maximum is refused before
//! anything is queued. Locally, `stratbox optimize --market
//! linear_perpetual` gives for every combination the report of `stratbox
//! backtest --market linear_perpetual --json`.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use stratbox_engine::candles::{self, Candles};
use stratbox_engine::perp::Instrument;

use super::api::{upload, Server};
use super::service::{p, Service};
use super::support;

const START_TS: i64 = 1_704_067_200;
const HOUR: i64 = 3_600;
const BARS: usize = 72;
const START: &str = "2024-01-01T00:00:00Z";
/// The last bar's open (bar 71).
const END: &str = "2024-01-03T23:00:00Z";
/// Bar 36 on is held out; the last in-sample bar opens an hour before.
const SPLIT: &str = "2024-01-02T12:00:00Z";
const LAST_IN_SAMPLE: &str = "2024-01-02T11:00:00Z";
const SYMBOL: &str = "SOLUSDT";

/// 72 hourly bars in which an EMA crossover goes long twice, once in each
/// half: a slow decline, a jump (the bullish cross), a rise and a fall
/// that closes the first long at a profit; then flat, another decline and
/// jump, a flat bar and a 15 % fall that liquidates a 10x long.
fn closes() -> Vec<f64> {
    let mut closes: Vec<f64> = (0..20).map(|i| 100.0 - 0.1 * f64::from(i)).collect();
    closes.push(101.0);
    closes.extend((1..=9).map(|i| 101.0 + 0.5 * f64::from(i)));
    closes.extend([104.0, 102.0, 100.0, 98.0, 96.0, 94.0]);
    closes.extend(std::iter::repeat_n(94.0, 4));
    closes.extend((1..=10).map(|i| 94.0 - 0.1 * f64::from(i)));
    closes.extend([95.5, 95.5, 81.175]);
    closes.extend(std::iter::repeat_n(81.175, BARS - 53));
    assert_eq!(closes.len(), BARS);
    closes
}

fn csv_of(rows: &[(f64, f64, f64, f64)]) -> String {
    let mut text = String::from("ts,open,high,low,close,volume\n");
    for (i, (open, high, low, close)) in rows.iter().enumerate() {
        let ts = START_TS + HOUR * i as i64;
        text.push_str(&format!("{ts},{open},{high},{low},{close},1\n"));
    }
    text
}

fn trade_rows() -> Vec<(f64, f64, f64, f64)> {
    let closes = closes();
    let mut prev = closes[0];
    closes
        .iter()
        .map(|&close| {
            let open = std::mem::replace(&mut prev, close);
            (open, open.max(close), open.min(close), close)
        })
        .collect()
}

/// The trade bars, except that the mark dips to 85 on bar 51 (the second
/// entry's bar, entry at 95.5): below that long's liquidation price, so
/// the mark liquidates it a bar before the trades would.
fn mark_rows() -> Vec<(f64, f64, f64, f64)> {
    let mut rows = trade_rows();
    assert_eq!(rows[51], (95.5, 95.5, 95.5, 95.5));
    rows[51].2 = 85.0;
    rows
}

/// A contract unlike the default: 25x at most, other fees.
fn instrument() -> Instrument {
    Instrument {
        max_leverage: 25.0,
        maker_fee: 0.0001,
        taker_fee: 0.0007,
        ..Instrument::bybit_default()
    }
}

/// A funding time every hour, so every held position pays.
fn funding() -> Vec<(i64, f64)> {
    (1..BARS as i64)
        .map(|k| (START_TS + HOUR * k, 0.0005))
        .collect()
}

/// The data as `stratbox data fetch bybit` leaves it beside the candles.
struct Files {
    candles: PathBuf,
    mark: PathBuf,
    funding: PathBuf,
    instrument: PathBuf,
}

impl Files {
    fn write(dir: &Path) -> Files {
        let files = Files {
            candles: dir.join("sol-1h.csv"),
            mark: dir.join("sol-1h.mark.csv"),
            funding: dir.join("sol-1h.funding.csv"),
            instrument: dir.join("sol-1h.instrument.json"),
        };
        std::fs::write(&files.candles, csv_of(&trade_rows())).unwrap();
        std::fs::write(&files.mark, csv_of(&mark_rows())).unwrap();
        let mut text = String::from("ts,rate\n");
        for (ts, rate) in funding() {
            text.push_str(&format!("{ts},{rate}\n"));
        }
        std::fs::write(&files.funding, text).unwrap();
        let json = serde_json::to_string(&instrument()).unwrap();
        std::fs::write(&files.instrument, json).unwrap();
        files
    }

    /// The perpetual flags of both commands: a 10x run on these files.
    fn flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = [
            "--capital",
            "10000",
            "--commission",
            "0.0006",
            "--leverage",
            "10",
            "--market",
            "linear_perpetual",
        ]
        .map(String::from)
        .to_vec();
        for (flag, path) in [
            ("--funding", &self.funding),
            ("--mark", &self.mark),
            ("--instrument", &self.instrument),
        ] {
            flags.push(flag.into());
            flags.push(p(path).into());
        }
        flags
    }
}

fn parse(text: &str) -> Candles {
    candles::parse_csv(text).unwrap()
}

/// Bars `from..to` of the trade candles as a CSV file.
fn part_csv(dir: &Path, name: &str, from: usize, to: usize) -> PathBuf {
    let rows = trade_rows();
    let mut text = String::from("ts,open,high,low,close,volume\n");
    for (i, (open, high, low, close)) in rows.iter().enumerate().take(to).skip(from) {
        let ts = START_TS + HOUR * i as i64;
        text.push_str(&format!("{ts},{open},{high},{low},{close},1\n"));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn run(dir: &Path, args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = support::stratbox(dir, &args);
    assert!(out.status.success(), "{args:?}: {}", support::stderr(&out));
    support::stdout(&out)
}

fn args(head: &[&str], rest: &[String]) -> Vec<String> {
    head.iter()
        .map(|s| s.to_string())
        .chain(rest.iter().cloned())
        .collect()
}

/// Each metric of a row equals its report's field.
fn assert_metrics(metrics: &Value, report: &Value, what: &str) {
    let metrics = metrics.as_object().unwrap();
    assert_eq!(
        metrics.len(),
        stratbox_engine::optimize::METRICS.len(),
        "{what}"
    );
    for (metric, value) in metrics {
        assert!(report.get(metric).is_some(), "{what}: no {metric}");
        assert_eq!(value.as_f64(), report[metric].as_f64(), "{what}: {metric}");
    }
}

async fn post(http: &reqwest::Client, server: &Server, path: &str, body: &Value) -> (u16, Value) {
    server.post_json(http, path, body).await
}

/// GET `path` until its `status` is completed.
async fn completed(http: &reqwest::Client, server: &Server, path: &str) -> Value {
    server.wait_completed(http, path).await
}

/// A 10x perpetual run of the stored symbol over `start..=end`.
fn backtest_request(strategy_id: u64, start: &str, end: &str, params: &Value) -> Value {
    json!({"strategy_id": strategy_id, "symbol": SYMBOL, "timeframe": "1h",
        "start_date": start, "end_date": end, "initial_capital": 10000.0,
        "leverage": 10, "commission": 0.0006, "market": "linear_perpetual",
        "config": {"params": params}})
}

/// The report of a single perpetual backtest through the API.
async fn single(
    http: &reqwest::Client,
    server: &Server,
    strategy_id: u64,
    (start, end): (&str, &str),
    params: &Value,
) -> Value {
    let request = backtest_request(strategy_id, start, end, params);
    let path = "/api/v1/queue/backtest/create-and-run";
    let (status, created) = post(http, server, path, &request).await;
    assert_eq!(status, 200, "{created}");
    let id = created["backtest_id"].as_u64().unwrap();
    let done = completed(http, server, &format!("/api/v1/backtests/{id}")).await;
    done["report"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_perpetual_optimization_runs_its_chunks_on_the_stored_contract_funding_and_marks() {
    let svc = Service::start("perp_opt").await;
    let server = Server::start(&svc);
    let _worker = svc.worker("w1", 2, &[]);
    let http = support::http_client();
    server.wait_healthy(&http).await;
    let (status, strategy) = upload(&http, &server, "ema-crossover").await;
    assert_eq!(status, 201, "{strategy}");
    let strategy_id = strategy["strategy_id"].as_u64().unwrap();

    let files = Files::write(&svc.dir);
    let trades = parse(&std::fs::read_to_string(&files.candles).unwrap());
    let mark = parse(&std::fs::read_to_string(&files.mark).unwrap());
    svc.store
        .import_candles(SYMBOL, HOUR, &trades)
        .await
        .unwrap();
    svc.store.import_mark(SYMBOL, HOUR, &mark).await.unwrap();
    svc.store.import_funding(SYMBOL, &funding()).await.unwrap();
    // Stored from its JSON with the symbol, as a fetch leaves it.
    let mut json = serde_json::to_value(instrument()).unwrap();
    json["symbol"] = json!(SYMBOL);
    let stored = serde_json::from_value(json).unwrap();
    svc.store.put_instrument(SYMBOL, &stored).await.unwrap();

    let sweep = |extra: Value| {
        let mut request = backtest_request(strategy_id, START, END, &json!({}));
        request["search_space"] = json!({"fast_period": [2, 3], "slow_period": [5, 8]});
        for (k, v) in extra.as_object().unwrap() {
            request[k] = v.clone();
        }
        request
    };
    let path = "/api/v1/queue/optimization/create-and-run";

    // 30x is within the default contract's 100 but above the stored 25:
    // refused naming leverage, nothing recorded or queued.
    let (status, body) = post(&http, &server, path, &sweep(json!({"leverage": 30}))).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "leverage", "{body}");
    let counters = svc.queue.counters().await.unwrap();
    assert_eq!(counters.tasks_submitted, 0, "{counters:?}");
    let ids: Option<u64> = redis::cmd("GET")
        .arg(svc.store.keys().optimization_next_id())
        .query_async(&mut svc.store.connection())
        .await
        .unwrap();
    assert_eq!(ids, None, "no optimization was recorded");

    // The whole range: four combinations, one a chunk.
    let (status, created) = post(&http, &server, path, &sweep(json!({}))).await;
    assert_eq!(status, 200, "{created}");
    let id = created["optimization_id"].as_u64().unwrap();
    let done = completed(&http, &server, &format!("/api/v1/optimizations/{id}?top=4")).await;
    assert_eq!(done["market"], "linear_perpetual", "{done}");
    assert_eq!(done["combinations"], 4, "{done}");
    let best = &done["top"][0];
    let report = single(&http, &server, strategy_id, (START, END), &best["params"]).await;
    // The second long is liquidated by the stored mark, on its entry bar;
    // funding comes from the stored history.
    assert_eq!(report["liquidations"], 1, "{report}");
    assert_eq!(report["num_trades"], 2, "{report}");
    assert_eq!(report["trades"][1]["exit_reason"], "liquidation");
    assert_eq!(report["trades"][1]["exit_bar"], 51, "{report}");
    assert_eq!(report["funding_source"], "history", "{report}");
    assert!(report["funding_paid"].as_f64().unwrap() > 0.0, "{report}");
    assert_metrics(&best["metrics"], &report, "best row");

    // Every row: the table is `stratbox optimize`'s on the same files.
    let table = http
        .get(server.url(&format!("/api/v1/optimizations/{id}/table.csv")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let local_csv = svc.dir.join("local.csv");
    let wasm = support::plugin("ema-crossover");
    let optimize = |extra: &[&str]| {
        let mut head = vec![
            "optimize",
            "--plugin",
            p(&wasm),
            "--candles",
            p(&files.candles),
            "--values",
            "fast_period=2,3",
            "--values",
            "slow_period=5,8",
            "--csv",
            p(&local_csv),
            "--quiet",
        ];
        head.extend_from_slice(extra);
        run(&svc.dir, &args(&head, &files.flags()));
        std::fs::read_to_string(&local_csv).unwrap()
    };
    assert_eq!(table, optimize(&[]));
    assert_eq!(table.lines().count(), 5);

    // With a hold-out: the in-sample and out-of-sample metrics are those
    // of single backtests over each part, the liquidation in the second.
    let (status, created) = post(
        &http,
        &server,
        path,
        &sweep(json!({"holdout": {"split": SPLIT}})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let id = created["optimization_id"].as_u64().unwrap();
    let done = completed(&http, &server, &format!("/api/v1/optimizations/{id}?top=4")).await;
    let best = &done["top"][0];
    let params = &best["params"];
    let in_sample = single(&http, &server, strategy_id, (START, LAST_IN_SAMPLE), params).await;
    let held_out = single(&http, &server, strategy_id, (SPLIT, END), params).await;
    assert_eq!(in_sample["num_trades"], 1, "{in_sample}");
    assert_eq!(held_out["liquidations"], 1, "{held_out}");
    assert_metrics(&best["metrics"], &in_sample, "in sample");
    assert_metrics(&best["oos"], &held_out, "held out");
    let table = http
        .get(server.url(&format!("/api/v1/optimizations/{id}/table.csv")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(table, optimize(&["--holdout", SPLIT]));
    svc.assert_drained().await;
}

#[test]
fn stratbox_optimize_on_a_perpetual_gives_the_perpetual_backtest_of_each_combination() {
    let dir = support::scratch("perp-optimize-cli");
    let files = Files::write(&dir);
    let wasm = support::plugin("ema-crossover");
    let backtest = |candles: &Path, params: &Value| -> Value {
        let mut head = vec![
            "backtest",
            "--plugin",
            p(&wasm),
            "--candles",
            p(candles),
            "--json",
        ];
        let given: Vec<String> = params
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for param in &given {
            head.extend(["--param", param.as_str()]);
        }
        serde_json::from_str(&run(&dir, &args(&head, &files.flags()))).unwrap()
    };
    let optimize = |extra: &[&str]| -> Value {
        let mut head = vec![
            "optimize",
            "--plugin",
            p(&wasm),
            "--candles",
            p(&files.candles),
            "--range",
            "fast_period=2:3",
            "--values",
            "slow_period=5,8",
            "--top",
            "4",
            "--json",
            "--quiet",
        ];
        head.extend_from_slice(extra);
        serde_json::from_str(&run(&dir, &args(&head, &files.flags()))).unwrap()
    };

    let result = optimize(&[]);
    let top = result["top"].as_array().unwrap();
    assert_eq!(top.len(), 4);
    for row in top {
        let single = backtest(&files.candles, &row["params"]);
        assert_eq!(single["market"], "linear_perpetual");
        assert_eq!(single["liquidations"], 1, "{single}");
        assert_eq!(single["num_trades"], 2, "{single}");
        assert_eq!(row["report"], single, "{}", row["params"]);
        assert_metrics(&row["metrics"], &single, "row");
    }

    // Held out from bar 36: each part as its own backtest, on the same
    // mark, funding and contract files.
    let in_sample = part_csv(&dir, "in-sample.csv", 0, 36);
    let held_out = part_csv(&dir, "held-out.csv", 36, BARS);
    let result = optimize(&["--holdout", SPLIT]);
    for row in result["top"].as_array().unwrap() {
        let is = backtest(&in_sample, &row["params"]);
        let oos = backtest(&held_out, &row["params"]);
        assert_eq!(
            (&is["num_trades"], &oos["liquidations"]),
            (&json!(1), &json!(1))
        );
        assert_eq!(row["report"], is, "{}", row["params"]);
        assert_eq!(row["oos_report"], oos, "{}", row["params"]);
        assert_metrics(&row["metrics"], &is, "in sample");
        assert_metrics(&row["oos"], &oos, "held out");
    }

    // The perpetual flags are checked as `stratbox backtest` checks them.
    let base = [
        "optimize",
        "--plugin",
        p(&wasm),
        "--candles",
        p(&files.candles),
        "--values",
        "fast_period=2,3",
    ];
    let cases: &[(&[&str], &str)] = &[
        (
            &["--funding-rate", "0.0001"],
            "--funding-rate: only for a perpetual run",
        ),
        (
            &[
                "--market",
                "linear_perpetual",
                "--leverage",
                "30",
                "--instrument",
                p(&files.instrument),
            ],
            "--leverage",
        ),
    ];
    for (extra, needle) in cases {
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        let out = support::stratbox(&dir, &args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{extra:?}: {}",
            support::stderr(&out)
        );
        assert!(
            support::stderr(&out).contains(needle),
            "{extra:?}: {}",
            support::stderr(&out)
        );
    }
}
