//! `stratbox dlq` and `stratbox tasks` against a running service: a task
//! cancelled while queued, a dead letter listed, shown, requeued and
//! purged, and bad input refused naming the argument.

use serde_json::json;

use super::api::{upload, Server, TOKEN};
use super::perp_api::post;
use super::perp_cli::story_csv;
use super::service::Service;
use super::support::{self, stderr, stdout};

/// `stratbox <args> --api URL --token TOKEN`.
pub(super) fn ops(svc: &Service, server: &Server, args: &[&str]) -> std::process::Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--api", server.base.as_str(), "--token", TOKEN]);
    support::stratbox(&svc.dir, &all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_list_show_cancel_requeue_and_purge_from_the_command_line() {
    let svc = Service::start("ops_cli").await;
    let server = Server::start(&svc);
    let http = support::http_client();
    server.wait_healthy(&http).await;
    server
        .import_candles(&http, "BTCUSDT", "1h", &story_csv(&svc.dir))
        .await;
    let (status, strategy) = upload(&http, &server, "ema-crossover").await;
    assert_eq!(status, 201, "{strategy}");
    let request = |fuel: u64| {
        json!({"strategy_id": strategy["strategy_id"], "symbol": "BTCUSDT", "timeframe": "1h",
            "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-01-03T13:00:00Z",
            "initial_capital": 10000.0, "leverage": 1, "commission": 0.0006, "fuel": fuel,
            "config": {"params": {"fast_period": 2, "slow_period": 5}}})
    };
    let path = "/api/v1/queue/backtest/create-and-run";

    // No worker yet: a queued task shows in the list and is cancelled.
    let (_, queued) = post(&http, &server, path, request(1_000)).await;
    let queued_id = queued["task_id"].as_str().unwrap().to_string();
    let out = ops(&svc, &server, &["tasks", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("waiting   high 0, normal 1, low 0"),
        "{}",
        stdout(&out)
    );
    let out = ops(&svc, &server, &["tasks", "cancel", &queued_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("{queued_id} cancelled"));
    let out = ops(&svc, &server, &["tasks", "show", &queued_id, "--json"]);
    let shown: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(shown["status"], "cancelled", "{shown}");

    // A run out of its own fuel lands in the DLQ.
    let _worker = svc.worker("w1", 1, &[]);
    let (_, starved) = post(&http, &server, path, request(1_000)).await;
    let starved_id = starved["task_id"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    let entry = loop {
        let out = ops(&svc, &server, &["dlq", "list", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let list: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        if let Some(e) = list["entries"].as_array().unwrap().first() {
            break e.clone();
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no dead letter"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(entry["fields"]["task_id"], starved_id.as_str());
    let out = ops(&svc, &server, &["dlq", "list"]);
    let table = stdout(&out);
    assert!(
        table.contains(&starved_id)
            && table.contains("fuel_exhausted")
            && table.contains("1 dead letters"),
        "{table}"
    );
    let out = ops(&svc, &server, &["tasks", "show", &starved_id]);
    assert!(
        stdout(&out).contains("error_code    fuel_exhausted"),
        "{}",
        stdout(&out)
    );

    // Requeue the entry: it runs again (and fails again, for the same fuel).
    let entry_id = entry["entry_id"].as_str().unwrap();
    let out = ops(&svc, &server, &["dlq", "requeue", entry_id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "requeued 1");
    let out = ops(&svc, &server, &["dlq", "requeue", "1-1"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown entry: {}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("DLQ entry 1-1"), "{}", stderr(&out));

    // Purge needs --yes; then the stream is empty.
    let out = ops(&svc, &server, &["dlq", "purge"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    let started = std::time::Instant::now();
    loop {
        let out = ops(&svc, &server, &["dlq", "purge", "--yes"]);
        assert!(out.status.success(), "{}", stderr(&out));
        // The requeued task fails again into the DLQ; purge once it has.
        if stdout(&out).trim() == "purged 1" {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "{}",
            stdout(&out)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = ops(&svc, &server, &["dlq", "list"]);
    assert!(stdout(&out).contains("0 dead letters"), "{}", stdout(&out));

    // Bad input names the argument; a wrong token is the server's refusal.
    let out = ops(&svc, &server, &["tasks", "show", "not-a-task"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("TASK_ID `not-a-task`"),
        "{}",
        stderr(&out)
    );
    let out = ops(&svc, &server, &["dlq", "list", "--count", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--count 0"), "{}", stderr(&out));
    let out = support::stratbox(
        &svc.dir,
        &[
            "dlq",
            "purge",
            "--yes",
            "--api",
            server.base.as_str(),
            "--token",
            "wrong",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
}
