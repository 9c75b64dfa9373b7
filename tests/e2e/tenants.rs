//! Tenants end to end: through the real binary's API and a real worker,
//! one tenant's 100,000 queued backtests do not starve another tenant's
//! single backtest, which starts within a bound stated here.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::api::{Server, TOKEN};
use super::ops_cli::ops;
use super::service::Service;
use super::support;
use stratbox_service::tasks::{submit_backtests, SubmitOptions};
use stratbox_store::TenantName;

/// The flood: enough backtests that a queue without turns would keep the
/// other tenant waiting for minutes.
const FLOOD: usize = 100_000;
/// Submitted in calls of this many.
const FLOOD_BATCH: usize = 5_000;
/// The other tenant's task starts within this of its submission: a fetch
/// takes it at the next turn, and it then waits only for the tasks the
/// worker already holds (its prefetch, a few 2,000-bar runs each).
const START_BOUND: Duration = Duration::from_secs(5);

async fn request(
    http: &reqwest::Client,
    server: &Server,
    method: reqwest::Method,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = http.request(method, server.url(path)).bearer_auth(key);
    if let Some(body) = body {
        r = r.json(&body);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn key_for(http: &reqwest::Client, server: &Server, tenant: &str) -> String {
    let body = json!({"tenant": tenant, "label": "e2e"});
    let (status, key) = server.post_json(http, "/api/v1/keys", &body).await;
    assert_eq!(status, 201, "{key}");
    key["secret"].as_str().unwrap().to_string()
}

async fn upload_as(http: &reqwest::Client, server: &Server, key: &str) -> u64 {
    let r = http
        .post(server.url("/api/v1/strategies"))
        .bearer_auth(key)
        .header("content-type", "application/wasm")
        .body(support::plugin_bytes("ema-crossover"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    body["strategy_id"].as_u64().unwrap()
}

fn backtest(strategy_id: u64) -> Value {
    json!({"strategy_id": strategy_id, "symbol": "BTCUSDT", "timeframe": "1h",
        "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-12-31T00:00:00Z",
        "initial_capital": 10000.0, "commission": 0.0006,
        "config": {"params": {"fast_period": 3, "slow_period": 9}}})
}

/// Tasks waiting in the whole queue (every lane).
async fn queued_everywhere(svc: &Service) -> u64 {
    svc.queue.stats().await.unwrap().waiting.values().sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tenants_flood_does_not_starve_anothers_backtest() {
    let svc = Service::start("tenants").await;
    let server = Server::start(&svc);
    let http = support::http_client();
    server.wait_healthy(&http).await;
    // Shared market data, imported by the admin (the token).
    let (csv, _) = support::candles_csv(&svc.dir, 2_000, 11, 3_600);
    server.import_candles(&http, "BTCUSDT", "1h", &csv).await;
    let acme = key_for(&http, &server, "acme").await;
    let globex = key_for(&http, &server, "globex").await;
    let acme_strategy = upload_as(&http, &server, &acme).await;
    let globex_strategy = upload_as(&http, &server, &globex).await;
    // Each tenant has its own copy of the same bytes; ids are
    // install-wide, so one tenant's id is another's 404.
    assert_ne!(acme_strategy, globex_strategy);

    // acme's one backtest through the API gives the definition its
    // flood repeats, submitted in bulk as a client library would.
    let post = reqwest::Method::POST;
    let path = "/api/v1/queue/backtest/create-and-run";
    let (status, first) = request(
        &http,
        &server,
        post.clone(),
        path,
        &acme,
        Some(backtest(acme_strategy)),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let acme_store = svc.store.for_tenant(&"acme".parse::<TenantName>().unwrap());
    let definition = acme_store
        .get_backtest(first["backtest_id"].as_u64().unwrap())
        .await
        .unwrap()
        .unwrap()
        .definition;
    let batch = vec![definition; FLOOD_BATCH];
    let submitting = Instant::now();
    for _ in 0..FLOOD / FLOOD_BATCH {
        submit_backtests(&acme_store, &svc.queue, &batch, &SubmitOptions::default())
            .await
            .map_err(|(_, e)| e)
            .unwrap();
    }
    eprintln!(
        "{FLOOD} backtests of acme submitted in {:?}",
        submitting.elapsed()
    );

    let _worker = svc.worker("w1", 2, &[]);
    // The worker is busy with acme's backlog before globex asks.
    let waiting = queued_everywhere(&svc).await;
    assert!(waiting > 90_000, "{waiting} waiting");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (status, run) = request(
        &http,
        &server,
        post,
        path,
        &globex,
        Some(backtest(globex_strategy)),
    )
    .await;
    assert_eq!(status, 200, "{run}");
    let task = format!("/api/v1/queue/tasks/{}", run["task_id"].as_str().unwrap());
    let asked = Instant::now();
    let started = loop {
        let (status, info) =
            request(&http, &server, reqwest::Method::GET, &task, &globex, None).await;
        assert_eq!(status, 200, "{info}");
        if info["status"] == "completed" {
            break info;
        }
        assert!(asked.elapsed() < Duration::from_secs(60), "not run: {info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let wait_ms =
        started["started_at_ms"].as_i64().unwrap() - started["created_at_ms"].as_i64().unwrap();
    let left = queued_everywhere(&svc).await;
    eprintln!("globex's backtest started {wait_ms} ms after submission, with {left} of acme's still waiting");
    assert!(
        Duration::from_millis(wait_ms as u64) < START_BOUND,
        "waited {wait_ms} ms"
    );
    assert!(
        left > 50_000,
        "acme's backlog had drained: {left} left, the test proves nothing"
    );

    // The report is globex's own: acme's key does not find it.
    let report = format!("/api/v1/backtests/{}", run["backtest_id"]);
    let (status, _) = request(&http, &server, reqwest::Method::GET, &report, &acme, None).await;
    assert_eq!(status, 404);
    let (status, body) =
        request(&http, &server, reqwest::Method::GET, &report, &globex, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed", "{body}");
    // Without a key nothing is read once keys exist; the token still is.
    let (status, _) = server.get_json(&http, "/api/v1/strategies").await;
    assert_eq!(status, 401);
    let (status, _) = request(
        &http,
        &server,
        reqwest::Method::GET,
        "/api/v1/queue/state",
        TOKEN,
        None,
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_manage_keys_and_quotas_from_the_command_line() {
    use support::{stderr, stdout};
    let svc = Service::start("tenants_cli").await;
    let server = Server::start(&svc);
    let http = support::http_client();
    server.wait_healthy(&http).await;

    let out = ops(
        &svc,
        &server,
        &[
            "tenants",
            "quota",
            "acme",
            "--max-queued",
            "3",
            "--max-running",
            "1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ops(
        &svc,
        &server,
        &["keys", "create", "--tenant", "acme", "--label", "ci"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let secret = stdout(&out).trim().to_string();
    assert!(secret.starts_with("sbx_"), "{secret}");
    // The key works, and sees acme's quota.
    let get = reqwest::Method::GET;
    let (status, acme) = request(
        &http,
        &server,
        get.clone(),
        "/api/v1/tenants/acme",
        &secret,
        None,
    )
    .await;
    assert_eq!(status, 200, "{acme}");
    assert_eq!(acme["quota"], json!({"max_queued": 3, "max_running": 1}));
    let out = ops(&svc, &server, &["tenants", "list"]);
    assert!(stdout(&out).contains("acme"), "{}", stdout(&out));
    // The queue caps acme's lane as the quota says.
    assert_eq!(svc.queue.lane_cap(Some("acme")).await.unwrap(), Some(1));

    // Bad input is refused, naming what was wrong.
    let out = ops(
        &svc,
        &server,
        &["tenants", "quota", "acme", "--max-queued", "0"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("max_queued"), "{}", stderr(&out));
    let out = ops(&svc, &server, &["keys", "create", "--tenant", "Not Valid"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`tenant`"), "{}", stderr(&out));
    let out = ops(&svc, &server, &["keys", "revoke", "xyz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("ID `xyz`"), "{}", stderr(&out));
    // A tenant's key is not an admin's.
    let out = support::stratbox(
        &svc.dir,
        &["keys", "list", "--api", &server.base, "--token", &secret],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("403 forbidden"), "{}", stderr(&out));

    let out = ops(&svc, &server, &["keys", "list", "--json"]);
    let keys: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let id = keys["keys"][0]["id"].as_str().unwrap().to_string();
    let out = ops(&svc, &server, &["keys", "revoke", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (status, _) = request(&http, &server, get, "/api/v1/tenants/acme", &secret, None).await;
    assert_eq!(status, 401, "a revoked key is refused");
}
