//! Optimizations through real worker processes: the table equals the
//! local `stratbox optimize` byte for byte (grid, random and bayes);
//! `kill -9` of a worker mid-run loses no chunk and counts none twice, and
//! mid-search changes no trial of a Bayesian search (the table equals an
//! undisturbed run's); a chunk that ends in the DLQ fails the
//! optimization; a walk-forward over HTTP gives the local report byte
//! for byte.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;
use stratbox_engine::candles;
use stratbox_engine::optimize::Direction;
use stratbox_service::tasks::optimization::{submit_optimization, OptimizationRequest};
use stratbox_service::tasks::SubmitOptions;
use stratbox_store::{BacktestStatus, OptimizationRecord};

use super::queue_backtest::{definition, hourly};
use super::service::{p, Service};
use super::support::{plugin, stderr, stratbox};

const HOUR: i64 = 3600;
const START: i64 = 1_704_067_200;
const FUEL: (&str, &str) = ("STRATBOX_FUEL_PER_BAR", "100000000000");

fn request(sha: &str, symbol: &str, bars: i64, space: serde_json::Value) -> OptimizationRequest {
    OptimizationRequest {
        backtest: definition(sha, symbol, START, START + (bars - 1) * HOUR),
        search_space: serde_json::from_value(space).unwrap(),
        method: "grid".into(),
        samples: None,
        batch: None,
        startup: None,
        seed: 0,
        metric: "sharpe".into(),
        direction: Direction::Maximize,
        min_trades: 0,
        constraint: None,
        holdout: None,
        walk_forward: None,
        max_combinations: None,
    }
}

async fn wait_done(svc: &Service, id: u64, timeout: Duration) -> OptimizationRecord {
    let started = Instant::now();
    loop {
        let r = svc.store.get_optimization(id).await.unwrap().unwrap();
        if r.status.is_terminal() {
            return r;
        }
        assert!(
            started.elapsed() < timeout,
            "optimization {id} not done: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_table_equals_the_local_cli_table() {
    let svc = Service::start("opt-queue-cli").await;
    let sha = svc.put_plugin("ema-crossover").await;
    let data = hourly(3_000, 21);
    svc.store
        .import_candles("BTCUSDT", HOUR, &data)
        .await
        .unwrap();
    let csv = svc.dir.join("candles.csv");
    let mut bytes = Vec::new();
    candles::write_csv(&data, &mut bytes).unwrap();
    std::fs::write(&csv, bytes).unwrap();

    let mut req = request(
        &sha,
        "BTCUSDT",
        3_000,
        json!({"fast_period": {"min": 4, "max": 20, "step": 4}, "slow_period": [30, 40, 50, 60, 70]}),
    );
    req.backtest.params = BTreeMap::from([("allow_short".to_string(), json!(true))]);
    req.holdout = Some("0.25".into());
    req.min_trades = 3;
    let _w = svc.worker("w1", 2, &[]);
    let (id, _task) = submit_optimization(&svc.store, &svc.queue, &req, &SubmitOptions::default())
        .await
        .unwrap();
    let r = wait_done(&svc, id, Duration::from_secs(120)).await;
    assert_eq!(r.status, BacktestStatus::Completed, "{r:?}");
    assert_eq!((r.combinations, r.done, r.chunks), (25, 25, 25));
    let queued = svc.store.optimization_table(id).await.unwrap().unwrap();

    let local_csv = svc.dir.join("local.csv");
    let wasm = plugin("ema-crossover");
    let out = stratbox(
        &svc.dir,
        &[
            "optimize",
            "--plugin",
            p(&wasm),
            "--candles",
            p(&csv),
            "--range",
            "fast_period=4:20:4",
            "--values",
            "slow_period=30,40,50,60,70",
            "--param",
            "allow_short=true",
            "--holdout",
            "0.25",
            "--min-trades",
            "3",
            "--csv",
            p(&local_csv),
            "--quiet",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let local = std::fs::read_to_string(&local_csv).unwrap();
    assert_eq!(queued, local);
    assert_eq!(queued.lines().count(), 26);
    // The winner's deflated Sharpe ratio: the same on both paths, a
    // probability.
    let local_json: serde_json::Value =
        serde_json::from_str(&crate::support::stdout(&out)).unwrap();
    let dsr = r.deflated_sharpe.expect("25 trials with a Sharpe ratio");
    assert!((0.0..=1.0).contains(&dsr), "{dsr}");
    assert_eq!(local_json["deflated_sharpe"].as_f64(), Some(dsr));

    // The random method: the same seed gives the same table on both paths.
    req.method = "random".into();
    req.samples = Some(7);
    req.seed = 3;
    let (id, _) = submit_optimization(&svc.store, &svc.queue, &req, &SubmitOptions::default())
        .await
        .unwrap();
    let r = wait_done(&svc, id, Duration::from_secs(120)).await;
    assert_eq!(
        (r.status, r.combinations),
        (BacktestStatus::Completed, 7),
        "{r:?}"
    );
    let queued = svc.store.optimization_table(id).await.unwrap().unwrap();
    let out = stratbox(
        &svc.dir,
        &[
            "optimize",
            "--plugin",
            p(&wasm),
            "--candles",
            p(&csv),
            "--range",
            "fast_period=4:20:4",
            "--values",
            "slow_period=30,40,50,60,70",
            "--param",
            "allow_short=true",
            "--holdout",
            "0.25",
            "--min-trades",
            "3",
            "--method",
            "random",
            "--samples",
            "7",
            "--seed",
            "3",
            "--csv",
            p(&local_csv),
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(queued, std::fs::read_to_string(&local_csv).unwrap());
    svc.assert_drained().await;
    assert_eq!(svc.queue.stats().await.unwrap().dlq, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bayes_search_through_the_queue_equals_the_local_cli_table() {
    let svc = Service::start("opt-bayes-cli").await;
    let sha = svc.put_plugin("ema-crossover").await;
    let data = hourly(3_000, 21);
    svc.store
        .import_candles("BTCUSDT", HOUR, &data)
        .await
        .unwrap();
    let csv = svc.dir.join("candles.csv");
    let mut bytes = Vec::new();
    candles::write_csv(&data, &mut bytes).unwrap();
    std::fs::write(&csv, bytes).unwrap();

    let mut req = request(
        &sha,
        "BTCUSDT",
        3_000,
        json!({"fast_period": {"min": 2, "max": 41, "step": 1},
               "slow_period": {"min": 20, "max": 140, "step": 5}}),
    );
    req.backtest.params = BTreeMap::from([("allow_short".to_string(), json!(true))]);
    req.method = "bayes".into();
    req.samples = Some(36);
    req.seed = 5;
    req.constraint = Some("fast_period < slow_period".into());
    req.holdout = Some("0.25".into());
    req.min_trades = 3;
    let _w = svc.worker("w1", 2, &[]);
    let (id, _) = submit_optimization(&svc.store, &svc.queue, &req, &SubmitOptions::default())
        .await
        .unwrap();
    let r = wait_done(&svc, id, Duration::from_secs(120)).await;
    assert_eq!(r.status, BacktestStatus::Completed, "{r:?}");
    // Rounds of 8, 8, 8, 8 and 4 trials, one chunk each.
    assert_eq!((r.combinations, r.done, r.chunks), (36, 36, 36));
    // The progress the last round left: every trial, the best the top row.
    let trials: serde_json::Value = serde_json::from_str(r.trials.as_deref().unwrap()).unwrap();
    let top: Vec<serde_json::Value> = serde_json::from_str(r.top.as_deref().unwrap()).unwrap();
    assert_eq!(trials["done"], 36);
    assert_eq!(trials["best"], top[0]);
    assert_eq!(top[0]["rank"], 1);
    let queued = svc.store.optimization_table(id).await.unwrap().unwrap();

    let local_csv = svc.dir.join("local.csv");
    let wasm = plugin("ema-crossover");
    let out = stratbox(
        &svc.dir,
        &[
            "optimize",
            "--plugin",
            p(&wasm),
            "--candles",
            p(&csv),
            "--range",
            "fast_period=2:41:1",
            "--range",
            "slow_period=20:140:5",
            "--param",
            "allow_short=true",
            "--constraint",
            "fast_period < slow_period",
            "--holdout",
            "0.25",
            "--min-trades",
            "3",
            "--method",
            "bayes",
            "--trials",
            "36",
            "--seed",
            "5",
            "--csv",
            p(&local_csv),
            "--quiet",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let local = std::fs::read_to_string(&local_csv).unwrap();
    assert_eq!(queued, local);
    assert_eq!(queued.lines().count(), 37);
    let local_json: serde_json::Value =
        serde_json::from_str(&crate::support::stdout(&out)).unwrap();
    assert_eq!(local_json["deflated_sharpe"].as_f64(), r.deflated_sharpe);
    svc.assert_drained().await;
    assert_eq!(svc.queue.stats().await.unwrap().dlq, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_bayes_search_changes_no_trial() {
    let svc = Service::start("opt-bayes-kill9").await;
    svc.store
        .import_candles("SLOW", HOUR, &hourly(400, 3))
        .await
        .unwrap();
    let sha = svc.put_plugin("hostile/slow").await;
    // 40 trials of about 25 ms each, in rounds of 8.
    let mut req = request(
        &sha,
        "SLOW",
        400,
        json!({"period": {"min": 2, "max": 129, "step": 1}}),
    );
    req.backtest.params = BTreeMap::from([("work".to_string(), json!(40_000))]);
    req.method = "bayes".into();
    req.samples = Some(40);
    req.seed = 11;
    let opts = SubmitOptions::default();

    let mut w0 = svc.worker("w0", 2, &[FUEL]);
    let (calm, _) = submit_optimization(&svc.store, &svc.queue, &req, &opts)
        .await
        .unwrap();
    let r = wait_done(&svc, calm, Duration::from_secs(120)).await;
    assert_eq!(r.status, BacktestStatus::Completed, "{r:?}");
    w0.kill9();
    let expected = svc.store.optimization_table(calm).await.unwrap().unwrap();

    // Killed in the second round.
    let mut w1 = svc.worker("w1", 2, &[FUEL]);
    let (id, _) = submit_optimization(&svc.store, &svc.queue, &req, &opts)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let r = svc.store.get_optimization(id).await.unwrap().unwrap();
        if r.done >= 10 {
            assert!(r.done < 40, "finished before the kill: {r:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{r:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    w1.kill9();
    let _w2 = svc.worker("w2", 2, &[FUEL]);
    let r = wait_done(&svc, id, Duration::from_secs(120)).await;
    assert_eq!(r.status, BacktestStatus::Completed, "{r:?}");
    assert_eq!((r.combinations, r.done, r.chunks), (40, 40, 40));
    let table = svc.store.optimization_table(id).await.unwrap().unwrap();
    assert_eq!(table, expected);
    let mut redelivered = 0;
    for task_id in svc.store.optimization_task_ids(id, r.chunks).await.unwrap() {
        let task = svc.wait_final(&task_id, Duration::from_secs(30)).await;
        assert_eq!(task.status.as_str(), "completed", "{task:?}");
        if task.attempts > 1 {
            redelivered += 1;
        }
    }
    assert!(
        redelivered >= 1,
        "no chunk was running when the worker died"
    );
    svc.assert_drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_optimization_loses_no_chunk_and_counts_none_twice() {
    let svc = Service::start("opt-kill9").await;
    svc.store
        .import_candles("SLOW", HOUR, &hourly(400, 3))
        .await
        .unwrap();
    let sha = svc.put_plugin("hostile/slow").await;
    // 64 combinations of about 25 ms each, two per chunk.
    let mut req = request(
        &sha,
        "SLOW",
        400,
        json!({"period": {"min": 2, "max": 65, "step": 1}}),
    );
    req.backtest.params = BTreeMap::from([("work".to_string(), json!(40_000))]);
    let opts = SubmitOptions::default();

    // The undisturbed run.
    let mut w0 = svc.worker("w0", 2, &[FUEL]);
    let (calm, _) = submit_optimization(&svc.store, &svc.queue, &req, &opts)
        .await
        .unwrap();
    let r = wait_done(&svc, calm, Duration::from_secs(120)).await;
    assert_eq!(r.status, BacktestStatus::Completed, "{r:?}");
    w0.kill9();
    let expected = svc.store.optimization_table(calm).await.unwrap().unwrap();

    // The same again, with the worker killed while chunks run.
    let mut w1 = svc.worker("w1", 2, &[FUEL]);
    let (id, _) = submit_optimization(&svc.store, &svc.queue, &req, &opts)
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let r = svc.store.get_optimization(id).await.unwrap().unwrap();
        if r.done >= 3 {
            assert!(r.done < r.chunks, "finished before the kill: {r:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{r:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    w1.kill9();
    let _w2 = svc.worker("w2", 2, &[FUEL]);
    let r = wait_done(&svc, id, Duration::from_secs(120)).await;
    assert_eq!(r.status, BacktestStatus::Completed, "{r:?}");
    assert_eq!((r.combinations, r.done, r.chunks), (64, 32, 32));
    let table = svc.store.optimization_table(id).await.unwrap().unwrap();
    assert_eq!(table, expected);
    // Every combination exactly once.
    let mut indices: Vec<usize> = table
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    indices.sort_unstable();
    assert_eq!(indices, (0..64).collect::<Vec<_>>());
    // The kill hit running chunks: some were delivered twice.
    let ids = svc.store.optimization_task_ids(id, r.chunks).await.unwrap();
    assert_eq!(ids.len(), 33);
    let mut redelivered = 0;
    for task_id in &ids {
        // A chunk whose rows were in when its worker died may still be
        // redelivered after the table is written: it finds the work done.
        let task = svc.wait_final(task_id, Duration::from_secs(30)).await;
        assert_eq!(task.status.as_str(), "completed", "{task:?}");
        if task.attempts > 1 {
            redelivered += 1;
        }
    }
    assert!(
        redelivered >= 1,
        "no chunk was running when the worker died"
    );
    // Late deliveries changed nothing.
    let again = svc.store.get_optimization(id).await.unwrap().unwrap();
    assert_eq!((again.status, again.done), (BacktestStatus::Completed, 32));
    assert_eq!(
        svc.store.optimization_table(id).await.unwrap().unwrap(),
        expected
    );
    svc.assert_drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_chunk_fails_the_optimization_and_cancel_stops_the_rest() {
    let svc = Service::start("opt-dlq").await;
    svc.store
        .import_candles("SLOW", HOUR, &hourly(400, 3))
        .await
        .unwrap();
    let sha = svc.put_plugin("hostile/slow").await;
    let _w = svc.worker("w1", 2, &[FUEL]);
    // Chunks that cannot finish within their task timeout: retried, then
    // dead-lettered.
    let mut req = request(&sha, "SLOW", 400, json!({"period": [5, 10]}));
    req.backtest.params = BTreeMap::from([("work".to_string(), json!(2_000_000))]);
    let opts = SubmitOptions {
        timeout_ms: Some(300),
        max_attempts: Some(2),
        ..SubmitOptions::default()
    };
    let (id, _) = submit_optimization(&svc.store, &svc.queue, &req, &opts)
        .await
        .unwrap();
    let r = wait_done(&svc, id, Duration::from_secs(60)).await;
    assert_eq!(r.status, BacktestStatus::Failed, "{r:?}");
    let error = r.error.unwrap();
    assert_eq!(error.code, "chunk_failed");
    assert!(
        error.message.contains("deadline_exceeded"),
        "{}",
        error.message
    );
    assert!(svc.store.optimization_table(id).await.unwrap().is_none());
    for task_id in svc.store.optimization_task_ids(id, r.chunks).await.unwrap() {
        svc.wait_final(&task_id, Duration::from_secs(30)).await;
    }

    // Cancelling a running optimization cancels its chunks.
    let mut req = request(
        &sha,
        "SLOW",
        400,
        json!({"period": {"min": 2, "max": 65, "step": 1}}),
    );
    // Chunks long enough that some still wait when the first is done,
    // even on a loaded machine (at 40,000 every chunk was sometimes taken
    // before the cancel came).
    req.backtest.params = BTreeMap::from([("work".to_string(), json!(120_000))]);
    let (id, _) = submit_optimization(&svc.store, &svc.queue, &req, &SubmitOptions::default())
        .await
        .unwrap();
    let started = Instant::now();
    let r = loop {
        let r = svc.store.get_optimization(id).await.unwrap().unwrap();
        if r.done >= 1 {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{r:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(stratbox_service::tasks::optimization::cancel_optimization(
        &svc.store, &svc.queue, id, r.chunks
    )
    .await
    .unwrap());
    let ids = svc.store.optimization_task_ids(id, r.chunks).await.unwrap();
    let mut cancelled = 0;
    for task_id in &ids {
        let task = svc.wait_final(task_id, Duration::from_secs(30)).await;
        // Chunks already fetched when the cancel came either stop or find
        // the optimization cancelled and skip their runs.
        if task.status.as_str() == "cancelled" {
            cancelled += 1;
        }
    }
    assert!(cancelled >= 1, "no chunk task was cancelled");
    let after = svc.store.get_optimization(id).await.unwrap().unwrap();
    assert_eq!(after.status, BacktestStatus::Cancelled);
    // No rows were written after the cancel (two slots may have been
    // finishing a chunk as it came).
    assert!(after.done <= r.done + 2, "{} after {}", after.done, r.done);
    assert!(after.done < after.chunks);
    assert!(svc.store.optimization_table(id).await.unwrap().is_none());
    svc.assert_drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_create_poll_top_and_table_with_a_worker() {
    let svc = Service::start("opt-http").await;
    let sha = svc.put_plugin("ema-crossover").await;
    let strategy_id = svc
        .store
        .plugin_record_by_sha(&sha)
        .await
        .unwrap()
        .unwrap()
        .strategy_id;
    svc.store
        .import_candles("BTCUSDT", HOUR, &hourly(2_000, 4))
        .await
        .unwrap();
    let _w = svc.worker("w1", 2, &[]);
    let base = serve_api(&svc).await;
    let http = crate::support::http_client();
    let mut body = json!({
        "strategy_id": strategy_id,
        "symbol": "BTCUSDT",
        "timeframe": "1h",
        "start_date": "2024-01-01T00:00:00Z",
        "end_date": "2024-03-31T00:00:00Z",
        "config": {"params": {"allow_short": true}},
        "search_space": {"fast_period": [5, 10, 15], "slow_period": {"min": 20, "max": 60, "step": 20}},
        "objective": {"metric": "total_return_pct"},
        "constraint": "fast_period < slow_period",
        "holdout": {"split": 0.2}
    });
    let r = http
        .post(format!("{base}/queue/optimization/create-and-run"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created: serde_json::Value = r.json().await.unwrap();
    let id = created["optimization_id"].as_u64().unwrap();
    let started = Instant::now();
    let got = loop {
        let got: serde_json::Value = http
            .get(format!("{base}/optimizations/{id}?top=3"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if got["status"] == "completed" {
            break got;
        }
        assert_ne!(got["status"], "failed", "{got}");
        assert!(started.elapsed() < Duration::from_secs(60), "{got}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(got["combinations"], 9);
    assert_eq!(got["progress"]["done"], got["progress"]["total"]);
    let top = got["top"].as_array().unwrap();
    assert_eq!(top.len(), 3);
    assert_eq!(top[0]["rank"], 1);
    assert!(top[0]["oos"]["total_return_pct"].is_number(), "{}", top[0]);
    assert!(top[0]["score"].as_f64().unwrap() >= top[1]["score"].as_f64().unwrap());
    let csv = http
        .get(format!("{base}/optimizations/{id}/table.csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    assert!(csv.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = csv.text().await.unwrap();
    assert_eq!(
        csv,
        svc.store.optimization_table(id).await.unwrap().unwrap()
    );
    assert_eq!(csv.lines().count(), 10);
    // A bad field: 422 naming it, nothing queued.
    body["search_space"]["fast_period"] = json!({"min": 5, "max": 20, "step": 0});
    let r = http
        .post(format!("{base}/queue/optimization/create-and-run"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["field"], "search_space.fast_period.step");
    svc.assert_drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_walk_forward_over_http_equals_the_local_report_byte_for_byte() {
    let svc = Service::start("opt-walk-forward").await;
    let sha = svc.put_plugin("ema-crossover").await;
    let strategy_id = svc
        .store
        .plugin_record_by_sha(&sha)
        .await
        .unwrap()
        .unwrap()
        .strategy_id;
    let data = hourly(2_600, 8);
    svc.store
        .import_candles("BTCUSDT", HOUR, &data)
        .await
        .unwrap();
    let csv = svc.dir.join("candles.csv");
    let mut bytes = Vec::new();
    candles::write_csv(&data, &mut bytes).unwrap();
    std::fs::write(&csv, bytes).unwrap();
    let _w = svc.worker("w1", 2, &[]);
    let base = serve_api(&svc).await;
    let http = crate::support::http_client();
    let last = stratbox_engine::time::format_rfc3339_secs(data.ts[2_599]);
    let mut body = json!({
        "strategy_id": strategy_id,
        "symbol": "BTCUSDT",
        "timeframe": "1h",
        "start_date": "2024-01-01T00:00:00Z",
        "end_date": last,
        "initial_capital": 10000.0,
        "commission": 0.0006,
        "config": {"params": {"allow_short": true}},
        "search_space": {"fast_period": {"min": 5, "max": 20, "step": 5}, "slow_period": [30, 60]},
        "objective": {"metric": "total_return_pct"},
        "min_trades": 2,
        "walk_forward": {"train": 1000, "test": "25d"}
    });
    let post = |body: serde_json::Value| {
        let http = http.clone();
        let url = format!("{base}/queue/optimization/create-and-run");
        async move { http.post(url).json(&body).send().await.unwrap() }
    };
    let r = post(body.clone()).await;
    assert_eq!(r.status(), 200);
    let created: serde_json::Value = r.json().await.unwrap();
    let id = created["optimization_id"].as_u64().unwrap();

    #[derive(serde::Deserialize)]
    struct Got {
        status: String,
        progress: serde_json::Value,
        top: Option<Vec<serde_json::Value>>,
        walk_forward: Option<Box<serde_json::value::RawValue>>,
    }
    let started = Instant::now();
    let got = loop {
        let text = http
            .get(format!("{base}/optimizations/{id}?top=1"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let got: Got = serde_json::from_str(&text).unwrap();
        if got.status == "completed" {
            break got;
        }
        assert!(got.walk_forward.is_none());
        assert_ne!(got.status, "failed", "{text}");
        assert!(started.elapsed() < Duration::from_secs(120), "{text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // 3 windows of 8 combinations, each window its own group of chunks.
    assert_eq!(got.progress["done"], got.progress["total"]);
    assert_eq!(got.progress["total"].as_u64().unwrap() % 3, 0);
    let queued = got.walk_forward.expect("the report once completed");

    let wasm = plugin("ema-crossover");
    let out = stratbox(
        &svc.dir,
        &[
            "optimize",
            "--plugin",
            p(&wasm),
            "--candles",
            p(&csv),
            "--range",
            "fast_period=5:20:5",
            "--values",
            "slow_period=30,60",
            "--param",
            "allow_short=true",
            "--objective",
            "total_return_pct",
            "--min-trades",
            "2",
            "--walk-forward",
            "train=1000,test=25d",
            "--json",
            "--quiet",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let local = crate::support::stdout(&out);
    assert_eq!(queued.get(), local.trim_end());
    let report: serde_json::Value = serde_json::from_str(queued.get()).unwrap();
    assert_eq!(report["windows"].as_array().unwrap().len(), 3);
    assert_eq!(report["stitched"]["bars"], 1_600);
    assert_eq!(
        report["stitched"]["strategy"]["sha256"].as_str(),
        Some(sha.as_str())
    );
    // `top` is the last window's ranking: its rank 1 is that window's choice.
    let top = got.top.unwrap();
    assert_eq!(top[0]["params"], report["windows"][2]["chosen"]["params"]);

    // Bad walk-forwards: 422 naming the field, nothing queued.
    let cases = [
        (json!({"train": "9x", "test": 5}), "walk_forward"),
        (
            json!({"train": 100, "test": 50, "step": 25}),
            "walk_forward.step",
        ),
        (
            json!({"train": "200d", "test": "10d"}),
            "walk_forward.train",
        ),
        (json!({"train": 100, "test": "90m"}), "walk_forward.test"),
        (json!([100, 50]), "walk_forward"),
    ];
    for (wf, field) in cases {
        body["walk_forward"] = wf.clone();
        let r = post(body.clone()).await;
        assert_eq!(r.status(), 422, "{wf}");
        let e: serde_json::Value = r.json().await.unwrap();
        assert_eq!(e["error"]["field"], field, "{wf}: {e}");
    }
    body["walk_forward"] = json!({"train": 1000, "test": 600});
    body["holdout"] = json!({"split": 0.2});
    let r = post(body.clone()).await;
    assert_eq!(r.status(), 422);
    let e: serde_json::Value = r.json().await.unwrap();
    assert_eq!(e["error"]["field"], "walk_forward", "{e}");
    svc.assert_drained().await;
}

/// The API in this process over the service's Redis, without a token:
/// its `/api/v1` base URL.
async fn serve_api(svc: &Service) -> String {
    let sandbox = stratbox_sandbox::Sandbox::new(stratbox_sandbox::SandboxConfig {
        pool_instances: 0,
        cache_dir: None,
        ..Default::default()
    })
    .unwrap();
    let state = stratbox_api::AppState::new(svc.store.clone(), svc.queue.clone(), sandbox, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/api/v1", listener.local_addr().unwrap());
    tokio::spawn(stratbox_api::serve(listener, state, std::future::pending()));
    base
}
