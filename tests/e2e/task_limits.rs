//! Per-task limits through the queue: a run given too little fuel of its
//! own fails with `fuel_exhausted` into the dead-letter stream, while the
//! same backtest with the worker's default budget completes; the worker
//! keeps serving. An optimization's runs get the fuel it names too. A run's
//! own `memory_mib` and `timeout_ms` stop it on the worker with
//! `memory_limit` and `deadline_exceeded`, naming its limit, not the
//! worker's.

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

/// A create-and-run of `strategy` over the story's 62 hourly bars, with
/// `extra` fields set on top.
fn story_request(strategy: &serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut body = json!({"strategy_id": strategy["strategy_id"], "symbol": "BTCUSDT",
        "timeframe": "1h", "start_date": "2024-01-01T00:00:00Z",
        "end_date": "2024-01-03T13:00:00Z", "initial_capital": 10000.0, "leverage": 1,
        "commission": 0.0006, "config": {"params": {}}});
    let serde_json::Value::Object(extra) = extra else {
        panic!("extra fields must be an object: {extra}")
    };
    for (k, v) in extra {
        body[k] = v;
    }
    body
}

/// Submits `body`, waits for its backtest to fail, and returns the
/// record's error and the fields of the task's dead-letter entry.
async fn submit_and_fail(
    http: &reqwest::Client,
    server: &Server,
    body: serde_json::Value,
) -> (serde_json::Value, serde_json::Value) {
    let (status, submitted) =
        post(http, server, "/api/v1/queue/backtest/create-and-run", body).await;
    assert_eq!(status, 200, "{submitted}");
    let id = submitted["backtest_id"].as_u64().unwrap();
    let record = server
        .wait_final(http, &format!("/api/v1/backtests/{id}"))
        .await;
    assert_eq!(record["status"], "failed", "{record}");
    let task_id = submitted["task_id"].as_str().unwrap();
    let (status, dlq) = server.get_json(http, "/api/v1/queue/dlq").await;
    assert_eq!(status, 200, "{dlq}");
    let entry = dlq["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["fields"]["task_id"] == task_id)
        .unwrap_or_else(|| panic!("{task_id} is not dead-lettered: {dlq}"));
    (record["error"].clone(), entry["fields"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_own_memory_limit_applies_on_the_worker() {
    let svc = Service::start("task_limits_memory").await;
    let server = Server::start(&svc);
    let _worker = svc.worker("w1", 1, &[]);
    let http = support::http_client();
    server.wait_healthy(&http).await;
    server
        .import_candles(&http, "BTCUSDT", "1h", &story_csv(&svc.dir))
        .await;
    let (status, bomb) = upload(&http, &server, "hostile/memory-bomb").await;
    assert_eq!(status, 201, "{bomb}");

    // 8 MiB of its own: stopped at 8 MiB, into the dead-letter stream.
    let (error, dead) = submit_and_fail(
        &http,
        &server,
        story_request(&bomb, json!({"memory_mib": 8})),
    )
    .await;
    assert_eq!(error["code"], "memory_limit", "{error}");
    let own = format!("past {} bytes", 8u64 << 20);
    assert!(error["message"].as_str().unwrap().contains(&own), "{error}");
    assert_eq!(dead["reason"], "memory_limit", "{dead}");
    assert!(dead["error"].as_str().unwrap().contains(&own), "{dead}");

    // Without one, the worker's cap (`STRATBOX_MEMORY_MIB`, 64 MiB here)
    // is what stops it: the 8 MiB above was the run's own.
    let (error, dead) = submit_and_fail(&http, &server, story_request(&bomb, json!({}))).await;
    assert_eq!(error["code"], "memory_limit", "{error}");
    let worker_cap = format!("past {} bytes", 64u64 << 20);
    assert!(
        error["message"].as_str().unwrap().contains(&worker_cap),
        "{error}"
    );
    assert_eq!(dead["reason"], "memory_limit", "{dead}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_own_timeout_applies_on_the_worker() {
    let svc = Service::start("task_limits_timeout").await;
    let server = Server::start(&svc);
    let _worker = svc.worker("w1", 1, &[]);
    let http = support::http_client();
    server.wait_healthy(&http).await;
    server
        .import_candles(&http, "BTCUSDT", "1h", &story_csv(&svc.dir))
        .await;
    let (status, slow) = upload(&http, &server, "hostile/slow").await;
    assert_eq!(status, 201, "{slow}");

    // About 10^9 steps a bar over 62 bars (minutes), with all the fuel it
    // may have, against 300 ms of wall clock per attempt: each attempt is
    // stopped at 300 ms (the queue's own task timeout is 10 minutes), and
    // after the last one the task is dead-lettered as a timeout.
    let body = story_request(
        &slow,
        json!({"config": {"params": {"work": 1_000_000_000, "period": 10}},
            "fuel": 1_000_000_000_000u64, "timeout_ms": 300}),
    );
    let started = std::time::Instant::now();
    let (error, dead) = submit_and_fail(&http, &server, body).await;
    assert_eq!(error["code"], "deadline_exceeded", "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("limit of 300ms"),
        "{error}"
    );
    assert_eq!(dead["reason"], "deadline_exceeded", "{dead}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    let (_, metrics) = server.get_json(&http, "/api/v1/queue/metrics").await;
    assert_eq!(metrics["tasks_timeout"], 1, "{metrics}");
}
