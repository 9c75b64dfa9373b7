//! Backtests through the queue: the old service's own check, and
//! validation before anything is queued.

use std::collections::BTreeMap;
use std::time::Duration;

use stratbox_engine::candles::{self, Candles};
use stratbox_service::tasks::{submit_backtest, SubmitError};
use stratbox_store::BacktestDefinition;

use super::service::{p, Service};
use super::support;

const HOUR: i64 = 3600;
const START: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

pub fn hourly(bars: usize, seed: u64) -> Candles {
    candles::synth(bars, seed, HOUR, START, 42_000.0)
}

pub fn definition(sha: &str, symbol: &str, start_ts: i64, end_ts: i64) -> BacktestDefinition {
    BacktestDefinition {
        strategy_sha256: sha.to_string(),
        strategy_id: None,
        name: None,
        symbol: symbol.to_string(),
        symbols: Vec::new(),
        timeframe_secs: HOUR,
        start_ts,
        end_ts,
        initial_capital: 10_000.0,
        commission: 0.0006,
        leverage: 1.0,
        slippage_bps: 0.0,
        params: BTreeMap::new(),
        market: Default::default(),
        funding_rate: None,
        limits: Default::default(),
    }
}

/// The report `stratbox backtest --json` prints for the same inputs.
fn local_report(svc: &Service, data: &Candles, def: &BacktestDefinition, plugin: &str) -> String {
    let range = data.range(def.start_ts, def.end_ts);
    let csv = svc
        .dir
        .join(format!("range-{}-{}.csv", def.start_ts, def.end_ts));
    let mut bytes = Vec::new();
    candles::write_csv(&range, &mut bytes).unwrap();
    std::fs::write(&csv, bytes).unwrap();
    let mut args: Vec<String> = vec![
        "backtest".into(),
        "--plugin".into(),
        p(&support::plugin(plugin)).into(),
        "--candles".into(),
        p(&csv).into(),
        "--capital".into(),
        def.initial_capital.to_string(),
        "--commission".into(),
        def.commission.to_string(),
        "--leverage".into(),
        def.leverage.to_string(),
        "--json".into(),
    ];
    for (name, value) in &def.params {
        args.push("--param".into());
        args.push(format!("{name}={value}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = support::stratbox(&svc.dir, &args);
    assert!(out.status.success(), "{}", support::stderr(&out));
    support::stdout(&out).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_backtests_complete_and_match_the_local_cli() {
    let svc = Service::start("five_backtests").await;
    let data = hourly(8_784, 7);
    svc.store
        .import_candles("BTCUSDT", HOUR, &data)
        .await
        .unwrap();
    let sha = svc.put_plugin("ema-crossover").await;
    let _worker = svc.worker("w1", 2, &[]);

    let mut submitted = Vec::new();
    for (i, (fast, slow)) in [(5, 20), (8, 21), (12, 26), (20, 50), (3, 9)]
        .into_iter()
        .enumerate()
    {
        let mut def = definition(
            &sha,
            "btcusdt",
            START + i as i64 * 30 * 24 * HOUR,
            START + 300 * 24 * HOUR,
        );
        def.params.insert("fast_period".into(), fast.into());
        def.params.insert("slow_period".into(), slow.into());
        def.commission = 0.0005 + i as f64 * 0.0001;
        let (backtest_id, task_id) = submit_backtest(&svc.store, &svc.queue, &def, 5)
            .await
            .unwrap();
        submitted.push((backtest_id, task_id, def));
    }
    for (backtest_id, task_id, def) in &submitted {
        let info = svc.wait_final(task_id, Duration::from_secs(60)).await;
        assert_eq!(info.status.as_str(), "completed", "{info:?}");
        let record = svc.store.get_backtest(*backtest_id).await.unwrap().unwrap();
        assert_eq!(record.status.as_str(), "completed");
        let report = record.report.expect("report stored");
        let mut local_def = def.clone();
        local_def.params.insert("allow_short".into(), false.into());
        assert_eq!(
            report,
            local_report(&svc, &data, &local_def, "ema-crossover")
        );
        let parsed: serde_json::Value = serde_json::from_str(&report).unwrap();
        assert!(parsed["num_trades"].as_u64().unwrap() > 0);
        // Kept with its curve in columns; read back as above.
        let stored: String = redis::cmd("HGET")
            .arg(svc.store.keys().backtest(*backtest_id))
            .arg("report")
            .query_async(&mut svc.queue.connection())
            .await
            .unwrap();
        assert!(
            stored.contains(r#""equity_curve":{"ts":["#),
            "{}",
            &stored[stored.len().saturating_sub(200)..]
        );
        // A point loses `{"ts":`, `,"equity":` and `}` (17 bytes) for a
        // second comma; the columns cost `{"ts":[`, `],"equity":[` and
        // `]}` where the list had `[]`, less a comma (a downsampled
        // curve is not evenly spaced to its end: its times stay).
        let points = parsed["equity_curve"].as_array().unwrap().len();
        assert!(points > 100, "{points}");
        assert_eq!(
            report.len() - stored.len(),
            16 * points - (r#"{"ts":[],"equity":[]}"#.len() - "[]".len() - 1),
        );
    }
    let counters = svc.queue.counters().await.unwrap();
    assert_eq!(
        (
            counters.tasks_submitted,
            counters.tasks_completed,
            counters.tasks_failed,
            counters.tasks_timeout,
            counters.active_tasks
        ),
        (5, 5, 0, 0, 0)
    );
    svc.assert_drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_submissions_are_refused_before_anything_is_queued() {
    let svc = Service::start("bad_submissions").await;
    svc.store
        .import_candles("BTCUSDT", HOUR, &hourly(500, 3))
        .await
        .unwrap();
    let sha = svc.put_plugin("ema-crossover").await;
    let end = START + 499 * HOUR;

    let unknown_plugin = definition(&"ab".repeat(32), "BTCUSDT", START, end);
    let err = submit_backtest(&svc.store, &svc.queue, &unknown_plugin, 5)
        .await
        .unwrap_err();
    assert!(matches!(err, SubmitError::UnknownStrategy(_)), "{err}");

    let unknown_candles = definition(&sha, "ETHUSDT", START, end);
    let err = submit_backtest(&svc.store, &svc.queue, &unknown_candles, 5)
        .await
        .unwrap_err();
    assert!(matches!(err, SubmitError::UnknownCandles { .. }), "{err}");
    assert_eq!(err.field(), Some("symbol"));

    let mut out_of_schema = definition(&sha, "BTCUSDT", START, end);
    out_of_schema.params.insert("fast_period".into(), 0.into());
    let err = submit_backtest(&svc.store, &svc.queue, &out_of_schema, 5)
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("fast_period"), "{err}");

    let mut unknown_param = definition(&sha, "BTCUSDT", START, end);
    unknown_param.params.insert("fastest".into(), 3.into());
    let err = submit_backtest(&svc.store, &svc.queue, &unknown_param, 5)
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("fastest"), "{err}");

    let backwards = definition(&sha, "BTCUSDT", end, START);
    let err = submit_backtest(&svc.store, &svc.queue, &backwards, 5)
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("start_date"), "{err}");

    let outside = definition(&sha, "BTCUSDT", end + HOUR, end + 100 * HOUR);
    let err = submit_backtest(&svc.store, &svc.queue, &outside, 5)
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("start_date"), "{err}");

    let mut negative = definition(&sha, "BTCUSDT", START, end);
    negative.initial_capital = -5.0;
    let err = submit_backtest(&svc.store, &svc.queue, &negative, 5)
        .await
        .unwrap_err();
    assert_eq!(err.field(), Some("initial_capital"), "{err}");

    let counters = svc.queue.counters().await.unwrap();
    assert_eq!(counters.tasks_submitted, 0);
    let stats = svc.queue.stats().await.unwrap();
    assert!(stats.waiting.values().all(|n| *n == 0), "{stats:?}");
    assert!(svc.store.list_backtests(10).await.unwrap().is_empty());
}
