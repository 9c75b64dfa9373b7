//! The HTTP API as a client sees it: `stratbox serve` and a worker, both
//! real processes, against a private Redis.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stratbox_engine::candles;

use super::queue_backtest::hourly;
use super::service::{p, Service, FAST_ENV};
use super::support;

pub(super) const TOKEN: &str = "e2e-token";

pub(super) struct Server {
    child: Child,
    log: std::path::PathBuf,
    pub(super) base: String,
}

impl Server {
    pub(super) fn start(svc: &Service) -> Server {
        Server::start_with(svc, &[])
    }

    /// `start`, with `extra` environment on top (it wins).
    pub(super) fn start_with(svc: &Service, extra: &[(&str, &str)]) -> Server {
        let port = support::free_port();
        let log = svc.dir.join("serve.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stratbox"));
        cmd.arg("serve")
            .env("REDIS_URL", svc.url())
            .env("STRATBOX_PREFIX", &svc.prefix)
            .env("STRATBOX_API_ADDR", format!("127.0.0.1:{port}"))
            .env("STRATBOX_API_TOKEN", TOKEN)
            .env("STRATBOX_CACHE_DIR", svc.dir.join("cache"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in FAST_ENV.iter().chain(extra) {
            cmd.env(k, v);
        }
        Server {
            child: cmd.spawn().expect("stratbox serve starts"),
            log,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs `body` as JSON with the token: the status and the JSON reply.
    pub(super) async fn post_json(
        &self,
        http: &reqwest::Client,
        path: &str,
        body: &Value,
    ) -> (u16, Value) {
        let r = http
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// GETs `path` until its `status` is `completed` (two minutes at
    /// most); any status but queued or running fails the test.
    pub(super) async fn wait_completed(&self, http: &reqwest::Client, path: &str) -> Value {
        let body = self.wait_final(http, path).await;
        assert_eq!(body["status"], "completed", "{path}: {body}");
        body
    }

    /// GETs `path` until its `status` is neither queued nor running (two
    /// minutes at most), and returns that body.
    pub(super) async fn wait_final(&self, http: &reqwest::Client, path: &str) -> Value {
        let started = Instant::now();
        loop {
            let (status, body) = self.get_json(http, path).await;
            assert_eq!(status, 200, "{path}: {body}");
            match body["status"].as_str().unwrap_or_default() {
                "queued" | "running" => {}
                _ => return body,
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "{path} not completed: {body}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Imports a candle CSV file as `symbol` at `timeframe`.
    pub(super) async fn import_candles(
        &self,
        http: &reqwest::Client,
        symbol: &str,
        timeframe: &str,
        csv: &std::path::Path,
    ) {
        let r = http
            .post(self.url(&format!("/api/v1/candles/{symbol}/{timeframe}")))
            .bearer_auth(TOKEN)
            .header("content-type", "text/csv")
            .body(std::fs::read(csv).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "import of {}", csv.display());
    }

    /// Tasks completed over the last `minutes`, summed from the history.
    pub(super) async fn completed_in_history(&self, http: &reqwest::Client, minutes: u32) -> i64 {
        let (status, history) = self
            .get_json(http, &format!("/api/v1/queue/history?minutes={minutes}"))
            .await;
        assert_eq!(status, 200, "{history}");
        history["minutes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["completed"].as_i64().unwrap())
            .sum()
    }

    /// GETs `path`: the status and the JSON body.
    pub(super) async fn get_json(&self, http: &reqwest::Client, path: &str) -> (u16, Value) {
        let r = http.get(self.url(path)).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    pub(super) async fn wait_healthy(&self, http: &reqwest::Client) {
        let started = Instant::now();
        loop {
            if let Ok(r) = http.get(self.url("/api/v1/queue/health")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "server not healthy; log:\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(super) async fn upload(http: &reqwest::Client, server: &Server, plugin: &str) -> (u16, Value) {
    upload_bytes(http, server, support::plugin_bytes(plugin)).await
}

/// Uploads a component's bytes: the status and the reply.
pub(super) async fn upload_bytes(
    http: &reqwest::Client,
    server: &Server,
    bytes: Vec<u8>,
) -> (u16, Value) {
    let r = http
        .post(server.url("/api/v1/strategies"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/wasm")
        .body(bytes)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_import_create_and_run_matches_the_local_cli() {
    let svc = Service::start("api_flow").await;
    let mut server = Server::start(&svc);
    let _worker = svc.worker("w1", 2, &[]);
    let http = crate::support::http_client();
    server.wait_healthy(&http).await;

    // Upload: checked by the sandbox, stored once.
    let (status, strategy) = upload(&http, &server, "ema-crossover").await;
    assert_eq!(status, 201, "{strategy}");
    let strategy_id = strategy["strategy_id"].as_u64().unwrap();
    assert_eq!(strategy["sha256"].as_str().unwrap().len(), 64);
    assert!(strategy["params"].as_array().unwrap().len() >= 2);
    let (status, again) = upload(&http, &server, "ema-crossover").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["strategy_id"], strategy_id);
    let (status, refused) = upload(&http, &server, "hostile/wrong-version").await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("contract version"),
        "{refused}"
    );
    let (status, refused) = upload(&http, &server, "hostile/fs-import").await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("forbidden import"),
        "{refused}"
    );
    let anonymous = http
        .post(server.url("/api/v1/strategies"))
        .body(support::plugin_bytes("ema-crossover"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Candles: a year of hourly bars as CSV.
    let data = hourly(8_784, 7);
    let mut csv = Vec::new();
    candles::write_csv(&data, &mut csv).unwrap();
    let r = http
        .post(server.url("/api/v1/candles/BTCUSDT/1h"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let series: Value = r.json().await.unwrap();
    assert_eq!(series["rows"], 8_784);

    // The reference request of docs/conventions/api-compat.md, word for word.
    let request = json!({"strategy_id": strategy_id, "symbol": "BTCUSDT", "timeframe": "1h",
       "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-12-31T00:00:00Z",
       "initial_capital": 10000.0, "leverage": 1, "commission": 0.0006,
       "config": {"name": "EMA Crossover", "params": {"fast_period": 12, "slow_period": 26}}});
    let r = http
        .post(server.url("/api/v1/queue/backtest/create-and-run"))
        .bearer_auth(TOKEN)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let created: Value = r.json().await.unwrap();
    assert_eq!(created["status"], "submitted");
    let backtest_id = created["backtest_id"].as_u64().unwrap();

    let started = Instant::now();
    let backtest = loop {
        let r = http
            .get(server.url(&format!("/api/v1/backtests/{backtest_id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        match body["status"].as_str().unwrap() {
            "completed" => break body,
            "queued" | "running" => {}
            other => panic!("backtest {other}: {body}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not completed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(backtest["progress"].as_f64(), Some(1.0));
    assert!(backtest["report"].is_object(), "{backtest}");

    // The same range through `stratbox backtest --json`.
    let record = svc.store.get_backtest(backtest_id).await.unwrap().unwrap();
    let range = data.range(1_704_067_200, 1_735_603_200);
    let csv_path = svc.dir.join("range.csv");
    let mut bytes = Vec::new();
    candles::write_csv(&range, &mut bytes).unwrap();
    std::fs::write(&csv_path, bytes).unwrap();
    let plugin = support::plugin("ema-crossover");
    let mut args: Vec<String> = [
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
        "1",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (name, value) in &record.definition.params {
        args.push("--param".into());
        args.push(format!("{name}={value}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = support::stratbox(&svc.dir, &args);
    assert!(out.status.success(), "{}", support::stderr(&out));
    let local = support::stdout(&out).trim().to_string();
    assert_eq!(record.report.as_deref(), Some(local.as_str()));
    let local: Value = serde_json::from_str(&local).unwrap();
    assert_eq!(backtest["report"], local);
    assert!(local["num_trades"].as_u64().unwrap() > 0);

    // `POST /backtest/run` runs the stored backtest again by id: same
    // record, a new task, the same report byte for byte.
    let r = http
        .post(server.url("/api/v1/queue/backtest/run"))
        .bearer_auth(TOKEN)
        .json(&json!({"backtest_id": backtest_id, "priority": 10}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rerun: Value = r.json().await.unwrap();
    assert_eq!(rerun["status"], "submitted");
    assert_eq!(
        rerun["message"],
        format!("Backtest {backtest_id} submitted to queue")
    );
    let rerun_task = rerun["task_id"].as_str().unwrap();
    assert_ne!(rerun_task, created["task_id"].as_str().unwrap());
    let info = svc.wait_final(rerun_task, Duration::from_secs(60)).await;
    assert_eq!(info.status, stratbox_queue::TaskStatus::Completed);
    let again = svc.store.get_backtest(backtest_id).await.unwrap().unwrap();
    assert_eq!(again.task_id.as_deref(), Some(rerun_task));
    assert_eq!(
        again.report, record.report,
        "a re-run gives the same report"
    );

    let metrics: Value = http
        .get(server.url("/api/v1/queue/metrics"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        metrics,
        json!({"tasks_submitted": 2, "tasks_completed": 2, "tasks_failed": 0,
               "tasks_timeout": 0, "active_tasks": 0})
    );
    // The live worker, from its heartbeat.
    let queue: Value = http
        .get(server.url("/api/v1/queue/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let workers = queue["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "{queue}");
    assert_eq!(workers[0]["consumer"], "w1");
    assert_eq!(workers[0]["slots"], 2);
    assert!(workers[0]["pid"].as_u64().unwrap() > 0);
    assert_eq!(queue["waiting"]["normal"], 0);
    assert_eq!(server.completed_in_history(&http, 3).await, 2);

    let prometheus = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "stratbox_tasks_completed_total 2",
        "stratbox_task_duration_seconds_count{outcome=\"completed\"} 2",
        "stratbox_workers_live 1",
        "stratbox_http_requests_total{method=\"POST\",route=\"/api/v1/queue/backtest/run\",status=\"200\"} 1",
    ] {
        assert!(
            prometheus.lines().any(|l| l == line),
            "missing {line:?} in:\n{prometheus}"
        );
    }

    // Multipart upload, as a browser form sends it.
    let boundary = "stratbox-e2e-boundary";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"rsi.wasm\"\r\n\
         Content-Type: application/wasm\r\n\r\n"
    )
    .into_bytes();
    form.extend(support::plugin_bytes("rsi-reversion"));
    form.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let r = http
        .post(server.url("/api/v1/strategies"))
        .bearer_auth(TOKEN)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let rsi: Value = r.json().await.unwrap();
    assert_eq!(rsi["name"], "RSI Reversion", "{rsi}");

    // The CLI commands that talk to the API.
    let cli = |args: &[&str], token: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stratbox"));
        cmd.args(args).env("STRATBOX_API_URL", &server.base);
        match token {
            Some(t) => cmd.env("STRATBOX_API_TOKEN", t),
            None => cmd.env_remove("STRATBOX_API_TOKEN"),
        };
        cmd.output().unwrap()
    };
    let breakout = support::plugin("breakout");
    let out = cli(&["upload", p(&breakout), "--json"], Some(TOKEN));
    assert!(out.status.success(), "{}", support::stderr(&out));
    let uploaded: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(uploaded["strategy_id"].as_u64().unwrap() > strategy_id);
    let out = cli(&["upload", p(&breakout)], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        support::stderr(&out).contains("401 unauthorized"),
        "{}",
        support::stderr(&out)
    );
    let (eth, _) = support::candles_csv(&svc.dir, 500, 3, 3_600);
    let out = cli(
        &[
            "candles",
            "import",
            p(&eth),
            "--symbol",
            "ethusdt",
            "--timeframe",
            "1h",
        ],
        Some(TOKEN),
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(
        support::stdout(&out).starts_with("ETHUSDT 1h: 500 rows imported"),
        "{}",
        support::stdout(&out)
    );
    let bad = svc.dir.join("bad.csv");
    std::fs::write(
        &bad,
        "ts,open,high,low,close,volume\n1,1,2,0.5,1,1\n2,1,0.1,0.5,1,1\n",
    )
    .unwrap();
    let out = cli(
        &[
            "candles",
            "import",
            p(&bad),
            "--symbol",
            "ETHUSDT",
            "--timeframe",
            "1h",
        ],
        Some(TOKEN),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = support::stderr(&out);
    assert!(
        err.contains("422 invalid_csv") && err.contains("line 3"),
        "{err}"
    );

    // SIGTERM: a graceful stop, exit 0.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "serve did not stop"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_under_the_server_loses_no_accepted_submission() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    let mut svc = Service::start("api_redis_restart").await;
    let server = Server::start(&svc);
    let _worker = svc.worker("w1", 2, &[]);
    let http = crate::support::http_client_builder()
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap();
    server.wait_healthy(&http).await;
    let (status, strategy) = upload(&http, &server, "ema-crossover").await;
    assert_eq!(status, 201, "{strategy}");
    let mut csv = Vec::new();
    candles::write_csv(&hourly(500, 11), &mut csv).unwrap();
    let r = http
        .post(server.url("/api/v1/candles/BTCUSDT/1h"))
        .bearer_auth(TOKEN)
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let request = json!({"strategy_id": strategy["strategy_id"], "symbol": "BTCUSDT",
        "timeframe": "1h", "start_date": "2024-01-01T00:00:00Z",
        "end_date": "2024-01-15T00:00:00Z", "initial_capital": 10000.0,
        "leverage": 1, "commission": 0.0006,
        "config": {"name": "EMA Crossover", "params": {"fast_period": 5, "slow_period": 20}}});

    // Submissions keep coming while Redis goes away and comes back.
    let stop = Arc::new(AtomicBool::new(false));
    let submitter = {
        let (http, url, stop) = (
            http.clone(),
            server.url("/api/v1/queue/backtest/create-and-run"),
            stop.clone(),
        );
        tokio::spawn(async move {
            let (mut accepted, mut unavailable) = (Vec::new(), 0);
            while !stop.load(Ordering::Relaxed) {
                let sent = http
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .json(&request)
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => {
                        let body: Value = r.json().await.unwrap();
                        accepted.push(body["backtest_id"].as_u64().unwrap());
                    }
                    Ok(r) if r.status() == 503 => {
                        let body: Value = r.json().await.unwrap();
                        assert_eq!(body["error"]["code"], "redis_unavailable", "{body}");
                        unavailable += 1;
                    }
                    Ok(r) => panic!("unexpected {}: {}", r.status(), r.text().await.unwrap()),
                    // A reply that never came (the client's timeout on a
                    // loaded machine) is not an acceptance either; the
                    // server must still be up, checked below.
                    Err(_) => unavailable += 1,
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (accepted, unavailable)
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;

    let (dir, port) = (svc.redis.dir().to_path_buf(), svc.redis.port());
    svc.redis.stop().unwrap();
    let health = |expected: u16| {
        let (http, url) = (http.clone(), server.url("/api/v1/queue/health"));
        async move {
            let started = Instant::now();
            loop {
                if let Ok(r) = http.get(&url).send().await {
                    if r.status().as_u16() == expected {
                        return r.json::<Value>().await.unwrap();
                    }
                }
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "health never answered {expected}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let down = health(503).await;
    assert_eq!(down["status"], "unhealthy");
    assert_eq!(down["redis_connected"], false);
    // Longer than the clients' reconnect attempts (about 0.6 s), so a
    // submission cannot simply wait the outage out.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    svc.redis = stratbox_redis::LocalRedis::start_on(&dir, port).unwrap();
    let up = health(200).await;
    assert_eq!(up["redis_connected"], true);
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::Relaxed);
    let (accepted, unavailable) = submitter.await.unwrap();
    assert!(unavailable > 0, "no submission met the outage");
    assert!(accepted.len() >= 5, "only {} accepted", accepted.len());

    // Every accepted submission runs to completion, exactly once.
    svc.wait_reconnected().await;
    let started = Instant::now();
    for id in &accepted {
        loop {
            let record = svc.store.get_backtest(*id).await.unwrap().unwrap();
            if record.status.as_str() == "completed" {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "backtest {id} lost: {:?}",
                record.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let counters = svc.queue.counters().await.unwrap();
    assert_eq!(counters.tasks_failed, 0);
    assert_eq!(
        counters.tasks_completed, counters.tasks_submitted,
        "{counters:?}"
    );
    assert!(counters.tasks_completed >= accepted.len() as i64);
}
