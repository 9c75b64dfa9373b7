//! Per-task limits through the queue: a run given too little fuel of its
//! own fails with `fuel_exhausted` into the dead-letter stream, while the
//! same backtest with the worker's default budget completes; the worker
//! keeps serving. An optimization's runs get the fuel it names too.

use serde_json::json;

use super::api::{upload, Server};
use super::perp_api::{completed, post};
use super::perp_cli::story_csv;
use super::service::Service;
use super::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_own_fuel_budget_applies_on_the_worker() {
    let svc = Service::start("task_limits").await;
    let server = Server::start(&svc);
    let _worker = svc.worker("w1", 1, &[]);
    let http = support::http_client();
    server.wait_healthy(&http).await;
    server
        .import_candles(&http, "BTCUSDT", "1h", &story_csv(&svc.dir))
        .await;
    let (status, strategy) = upload(&http, &server, "ema-crossover").await;
    assert_eq!(status, 201, "{strategy}");
    let request = |extra: serde_json::Value| {
        let mut body = json!({"strategy_id": strategy["strategy_id"], "symbol": "BTCUSDT",
            "timeframe": "1h", "start_date": "2024-01-01T00:00:00Z",
            "end_date": "2024-01-03T13:00:00Z", "initial_capital": 10000.0, "leverage": 1,
            "commission": 0.0006, "config": {"params": {"fast_period": 2, "slow_period": 5}}});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let path = "/api/v1/queue/backtest/create-and-run";
    let (status, starved) = post(&http, &server, path, request(json!({"fuel": 1_000}))).await;
    assert_eq!(status, 200, "{starved}");
    let id = starved["backtest_id"].as_u64().unwrap();
    let started = std::time::Instant::now();
    let failed = loop {
        let (_, b) = server
            .get_json(&http, &format!("/api/v1/backtests/{id}"))
            .await;
        if b["status"] == "failed" {
            break b;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "not failed: {b}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(failed["error"]["code"], "fuel_exhausted", "{failed}");
    let (_, dlq) = server.get_json(&http, "/api/v1/queue/dlq").await;
    assert!(
        dlq.to_string()
            .contains(starved["task_id"].as_str().unwrap()),
        "{dlq}"
    );

    // The worker's own budget for the same run: completed.
    let (status, fed) = post(&http, &server, path, request(json!({}))).await;
    assert_eq!(status, 200, "{fed}");
    let done = completed(&http, &server, fed["backtest_id"].as_u64().unwrap()).await;
    assert!(
        done["report"]["fuel_used"].as_u64().unwrap() > 1_000,
        "{done}"
    );

    // An optimization's every run gets its own fuel: too little fails each
    // row (the optimization itself completes, listing them unranked).
    let sweep = |fuel: serde_json::Value| {
        let mut body = request(json!({}));
        body["search_space"] = json!({"fast_period": [2, 3], "slow_period": [5, 8]});
        body["config"] = json!({"params": {}});
        if !fuel.is_null() {
            body["fuel"] = fuel;
        }
        body
    };
    let path = "/api/v1/queue/optimization/create-and-run";
    let (status, starved) = post(&http, &server, path, sweep(json!(1_000))).await;
    assert_eq!(status, 200, "{starved}");
    let id = starved["optimization_id"].as_u64().unwrap();
    let done = server
        .wait_completed(&http, &format!("/api/v1/optimizations/{id}?top=10"))
        .await;
    let rows = done["top"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{done}");
    for row in rows {
        assert!(row["rank"].is_null(), "{row}");
        assert!(row["error"].as_str().unwrap().contains("fuel"), "{row}");
    }
    let (status, fed) = post(&http, &server, path, sweep(serde_json::Value::Null)).await;
    assert_eq!(status, 200, "{fed}");
    let id = fed["optimization_id"].as_u64().unwrap();
    let done = server
        .wait_completed(&http, &format!("/api/v1/optimizations/{id}?top=10"))
        .await;
    assert!(
        done["top"]
            .as_array()
            .unwrap()
            .iter()
            .all(|row| row["error"].is_null()),
        "{done}"
    );
}
