//! A strategy's log on the service: what a queued run logged is kept with
//! its backtest and served at `GET /api/v1/backtests/{id}/log`, line for
//! line what `stratbox backtest --show-log` prints for the same run; a
//! run again shows the new run's lines; a quiet strategy leaves nothing.

use serde_json::{json, Value};

use super::api::{upload, Server};
use super::perp_api::{completed, post};
use super::perp_cli::story_csv;
use super::service::{p, Service};
use super::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_runs_log_is_served_as_the_cli_shows_it() {
    let svc = Service::start("strategy_log").await;
    let server = Server::start(&svc);
    let _worker = svc.worker("w1", 2, &[]);
    let http = support::http_client();
    server.wait_healthy(&http).await;

    let csv_path = story_csv(&svc.dir);
    server
        .import_candles(&http, "BTCUSDT", "1h", &csv_path)
        .await;
    let (status, probe) = upload(&http, &server, "hostile/market-probe").await;
    assert_eq!(status, 201, "{probe}");
    let (status, quiet) = upload(&http, &server, "ema-crossover").await;
    assert_eq!(status, 201, "{quiet}");

    let run = |strategy_id: u64, params: Value| {
        json!({"strategy_id": strategy_id, "symbol": "BTCUSDT", "timeframe": "1h",
            "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-01-03T13:00:00Z",
            "initial_capital": 10000.0, "leverage": 10, "commission": 0.0006,
            "market": "linear_perpetual", "config": {"params": params}})
    };
    let path = "/api/v1/queue/backtest/create-and-run";
    let probe_id = probe["strategy_id"].as_u64().unwrap();
    let (status, created) = post(&http, &server, path, run(probe_id, json!({"buy_at": 20}))).await;
    assert_eq!(status, 200, "{created}");
    let backtest_id = created["backtest_id"].as_u64().unwrap();
    completed(&http, &server, backtest_id).await;
    let (status, log) = server
        .get_json(&http, &format!("/api/v1/backtests/{backtest_id}/log"))
        .await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log["task_id"], created["task_id"], "{log}");
    let served: Vec<String> = log["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "[{}] {}",
                l["level"].as_str().unwrap(),
                l["message"].as_str().unwrap()
            )
        })
        .collect();
    assert!(
        served.len() >= 2,
        "the probe logs its state and its position: {log}"
    );
    assert!(
        served[0].starts_with("[info] bar=0 market=linear_perpetual"),
        "{log}"
    );

    // The CLI on the same data and params prints the same lines.
    let plugin = support::plugin("hostile/market-probe");
    let out = support::stratbox(
        &svc.dir,
        &[
            "backtest",
            "--plugin",
            p(&plugin),
            "--candles",
            p(&csv_path),
            "--capital",
            "10000",
            "--commission",
            "0.0006",
            "--leverage",
            "10",
            "--market",
            "linear_perpetual",
            "--param",
            "buy_at=20",
            "--show-log",
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let printed: Vec<String> = support::stderr(&out).lines().map(str::to_string).collect();
    assert_eq!(served, printed);

    // Run again: the log is the new run's.
    let (status, rerun) = post(
        &http,
        &server,
        "/api/v1/queue/backtest/run",
        json!({"backtest_id": backtest_id}),
    )
    .await;
    assert_eq!(status, 200, "{rerun}");
    completed(&http, &server, backtest_id).await;
    let (_, again) = server
        .get_json(&http, &format!("/api/v1/backtests/{backtest_id}/log"))
        .await;
    assert_eq!(again["task_id"], rerun["task_id"], "{again}");
    assert_eq!(again["lines"], log["lines"], "the same run logs the same");

    // A quiet strategy: no lines, and nothing written for it.
    let quiet_id = quiet["strategy_id"].as_u64().unwrap();
    let (status, created) = post(
        &http,
        &server,
        path,
        run(quiet_id, json!({"fast_period": 2, "slow_period": 5})),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let quiet_backtest = created["backtest_id"].as_u64().unwrap();
    completed(&http, &server, quiet_backtest).await;
    let (_, log) = server
        .get_json(&http, &format!("/api/v1/backtests/{quiet_backtest}/log"))
        .await;
    assert_eq!(
        (log["lines"].clone(), log["dropped"].clone()),
        (json!([]), json!(0)),
        "{log}"
    );
    let mut conn = svc.store.connection();
    let exists: bool = redis::cmd("EXISTS")
        .arg(svc.store.keys().backtest_log(quiet_backtest))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!exists, "a quiet run costs no write");
    let (status, _) = server.get_json(&http, "/api/v1/backtests/999999/log").await;
    assert_eq!(status, 404);
}
