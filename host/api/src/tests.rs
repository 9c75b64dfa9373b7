//! The router against a private Redis, through `oneshot`: no worker runs,
//! so submitted tasks stay queued.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{app, AppState};
use stratbox_queue::{Class, Queue, QueueConfig};
use stratbox_redis::LocalRedis;
use stratbox_sandbox::{Sandbox, SandboxConfig};
use stratbox_store::test_support::TestRedis;

const HOUR: i64 = 3600;
const START: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z

struct Harness {
    redis: TestRedis,
    state: AppState,
}

/// A private Redis and the API's state over it (no pooled instances, no
/// compiled-code cache): what every router test starts from.
pub(crate) async fn test_state(name: &str, token: Option<&str>) -> (TestRedis, AppState) {
    let redis = TestRedis::start(name).await;
    let prefix = redis.store.keys().prefix().to_string();
    let queue = Queue::connect(&redis.server.url(), &prefix, QueueConfig::default())
        .await
        .unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        pool_instances: 0,
        cache_dir: None,
        ..SandboxConfig::default()
    })
    .unwrap();
    let state = AppState::new(redis.store.clone(), queue, sandbox, token);
    (redis, state)
}

impl Harness {
    async fn start(name: &str, token: Option<&str>) -> Harness {
        let (redis, state) = test_state(name, token).await;
        Harness { redis, state }
    }

    fn app(&self) -> Router {
        app(self.state.clone())
    }

    /// A strategy record with the EMA crossover's schema. Returns its
    /// strategy id.
    async fn fake_strategy(&self) -> u64 {
        self.redis.fake_strategy().await.strategy_id
    }

    async fn candles(&self, bars: usize) {
        let data = stratbox_engine::candles::synth(bars, 7, HOUR, START, 42_000.0);
        self.state
            .store
            .import_candles("BTCUSDT", HOUR, &data)
            .await
            .unwrap();
    }

    async fn stream_len(&self) -> u64 {
        let mut conn = self.state.queue.connection();
        let mut total = 0;
        for class in Class::ALL {
            let n: u64 = redis::cmd("XLEN")
                .arg(self.state.queue.keys().stream(class))
                .query_async(&mut conn)
                .await
                .unwrap();
            total += n;
        }
        total
    }
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, value)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

fn post_json(uri: &str, body: &Value) -> Request<Body> {
    Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn set(names: &[&'static str]) -> BTreeSet<&'static str> {
    names.iter().copied().collect()
}

/// The reference request of docs/conventions/api-compat.md, word for word.
fn spec_request(strategy_id: u64) -> Value {
    json!({"strategy_id": strategy_id, "symbol": "BTCUSDT", "timeframe": "1h",
       "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-12-31T00:00:00Z",
       "initial_capital": 10000.0, "leverage": 1, "commission": 0.0006,
       "config": {"name": "EMA Crossover", "params": {"fast_period": 12, "slow_period": 26}}})
}

const METRICS_KEYS: [&str; 5] = [
    "tasks_submitted",
    "tasks_completed",
    "tasks_failed",
    "tasks_timeout",
    "active_tasks",
];

#[tokio::test]
async fn compatible_endpoints_answer_with_the_old_fields() {
    let h = Harness::start("api-compat", None).await;
    let id = h.fake_strategy().await;
    h.candles(9_000).await;
    let app = h.app();

    let (status, body) = send(
        &app,
        post_json("/api/v1/queue/backtest/create-and-run", &spec_request(id)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        keys(&body),
        set(&["backtest_id", "task_id", "status", "message"])
    );
    assert!(body["backtest_id"].is_u64());
    assert_eq!(body["task_id"].as_str().unwrap().len(), 36);
    assert_eq!(body["status"], "submitted");
    assert_eq!(body["message"], "Backtest created and submitted to queue");
    let backtest_id = body["backtest_id"].as_u64().unwrap();
    let first_task = body["task_id"].as_str().unwrap().to_string();

    // The range is inclusive and the dates are unix seconds.
    let record = h
        .state
        .store
        .get_backtest(backtest_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.definition.start_ts, START);
    assert_eq!(record.definition.end_ts, 1_735_603_200);
    assert_eq!(record.definition.timeframe_secs, HOUR);
    assert_eq!(record.definition.strategy_id, Some(id));
    assert_eq!(record.definition.name.as_deref(), Some("EMA Crossover"));

    let (status, body) = send(
        &app,
        post_json(
            "/api/v1/queue/backtest/run",
            &json!({"backtest_id": backtest_id, "priority": 10}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(keys(&body), set(&["task_id", "status", "message"]));
    assert_eq!(body["status"], "submitted");
    assert_eq!(
        body["message"],
        format!("Backtest {backtest_id} submitted to queue")
    );
    // The new run supersedes the one still queued: one entry, and the
    // first task ends as cancelled (its id is no longer found).
    assert_eq!(h.stream_len().await, 1);
    let (status, _) = send(&app, get(&format!("/api/v1/queue/tasks/{first_task}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, task) = send(
        &app,
        get(&format!(
            "/api/v1/queue/tasks/{}",
            body["task_id"].as_str().unwrap()
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(
        (task["status"].as_str(), task["priority"].as_i64()),
        (Some("queued"), Some(10))
    );

    let (status, metrics) = send(&app, get("/api/v1/queue/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(keys(&metrics), set(&METRICS_KEYS));
    assert!(
        METRICS_KEYS.iter().all(|k| metrics[k].is_i64()),
        "{metrics}"
    );
    assert_eq!(metrics["tasks_submitted"], 2);

    let (status, health) = send(&app, get("/api/v1/queue/health")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        keys(&health),
        set(&["status", "redis_connected", "metrics"])
    );
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["redis_connected"], true);
    assert_eq!(health["metrics"], metrics);
}

#[tokio::test]
async fn bad_submissions_name_the_field_and_queue_nothing() {
    let h = Harness::start("api-bad", None).await;
    let id = h.fake_strategy().await;
    h.candles(500).await;
    let app = h.app();
    let with = |patch: &dyn Fn(&mut Value)| {
        let mut v = spec_request(id);
        patch(&mut v);
        v
    };
    let cases: Vec<(&str, Value, StatusCode, Option<&str>)> = vec![
        (
            "unknown strategy",
            with(&|v| v["strategy_id"] = json!(999)),
            StatusCode::NOT_FOUND,
            Some("strategy_id"),
        ),
        (
            "unknown symbol",
            with(&|v| v["symbol"] = json!("ETHUSDT")),
            StatusCode::NOT_FOUND,
            Some("symbol"),
        ),
        (
            "param out of its schema",
            with(&|v| v["config"]["params"]["fast_period"] = json!(0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("config.params.fast_period"),
        ),
        (
            "param of the wrong type",
            with(&|v| v["config"]["params"]["fast_period"] = json!("fast")),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("config.params.fast_period"),
        ),
        (
            "unknown param",
            with(&|v| v["config"]["params"]["fastest"] = json!(3)),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("config.params.fastest"),
        ),
        (
            "start after end",
            with(&|v| v["start_date"] = json!("2025-01-01T00:00:00Z")),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("start_date"),
        ),
        (
            "negative capital",
            with(&|v| v["initial_capital"] = json!(-5.0)),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("initial_capital"),
        ),
        (
            "leverage out of range",
            with(&|v| v["leverage"] = json!(1000)),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("leverage"),
        ),
        (
            "range with no candles",
            with(&|v| {
                v["start_date"] = json!("2030-01-01T00:00:00Z");
                v["end_date"] = json!("2030-02-01T00:00:00Z");
            }),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("start_date"),
        ),
        (
            "bad timeframe",
            with(&|v| v["timeframe"] = json!("1x")),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("timeframe"),
        ),
        (
            "bad date",
            with(&|v| v["end_date"] = json!("31/12/2024")),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("end_date"),
        ),
        (
            "priority out of range",
            with(&|v| v["priority"] = json!(-1)),
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("priority"),
        ),
        (
            "missing field",
            with(&|v| {
                v.as_object_mut().unwrap().remove("symbol");
            }),
            StatusCode::BAD_REQUEST,
            None,
        ),
        (
            "wrong type",
            with(&|v| v["strategy_id"] = json!("one")),
            StatusCode::BAD_REQUEST,
            None,
        ),
    ];
    for (what, body, want, field) in cases {
        let (status, reply) = send(
            &app,
            post_json("/api/v1/queue/backtest/create-and-run", &body),
        )
        .await;
        assert_eq!(status, want, "{what}: {reply}");
        assert_eq!(keys(&reply), set(&["error"]), "{what}: {reply}");
        assert!(reply["error"]["code"].is_string(), "{what}: {reply}");
        assert!(reply["error"]["message"].is_string(), "{what}: {reply}");
        assert_eq!(reply["error"]["field"].as_str(), field, "{what}: {reply}");
    }
    let (status, reply) = send(&app, post_json("/api/v1/queue/backtest/create-and-run", &json!({"strategy_id": 1, "symbol": "BTCUSDT", "timeframe": "1h", "start_date": "2024-01-01T00:00:00Z"}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("end_date"),
        "{reply}"
    );
    let malformed = Request::post("/api/v1/queue/backtest/create-and-run")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"strategy_id\": "))
        .unwrap();
    let (status, _) = send(&app, malformed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, reply) = send(
        &app,
        post_json("/api/v1/queue/backtest/run", &json!({"backtest_id": 77})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    assert_eq!(reply["error"]["field"], "backtest_id");
    let too_big = Request::post("/api/v1/queue/backtest/create-and-run")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(vec![b' '; 2 << 20]))
        .unwrap();
    let (status, reply) = send(&app, too_big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{reply}");

    let counters = h.state.queue.counters().await.unwrap();
    assert_eq!(counters.tasks_submitted, 0);
    assert_eq!(h.stream_len().await, 0);
    assert!(h.state.store.list_backtests(10).await.unwrap().is_empty());
}

#[tokio::test]
async fn health_is_503_while_redis_is_down_and_recovers() {
    let mut h = Harness::start("api-health", None).await;
    let app = h.app();
    let (status, _) = send(&app, get("/api/v1/queue/health")).await;
    assert_eq!(status, StatusCode::OK);

    let (dir, port) = (h.redis.server.dir().to_path_buf(), h.redis.server.port());
    h.redis.server.stop().unwrap();
    let (status, body) = send(&app, get("/api/v1/queue/health")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["redis_connected"], false);
    let (status, body) = send(&app, get("/api/v1/queue/metrics")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "redis_unavailable");
    // Prometheus still gets an answer that shows the outage.
    let (status, text) = send(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().unwrap();
    assert!(text.contains("\nstratbox_redis_up 0\n"), "{text}");
    assert!(!text.contains("stratbox_queue_waiting"), "{text}");

    h.redis.server = LocalRedis::start_on(&dir, port).unwrap();
    let started = Instant::now();
    loop {
        let (status, body) = send(&app, get("/api/v1/queue/health")).await;
        if status == StatusCode::OK {
            assert_eq!(body["redis_connected"], true);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn prometheus_metrics_cover_the_queue_and_http() {
    let h = Harness::start("api-prometheus", None).await;
    let id = h.fake_strategy().await;
    h.candles(9_000).await;
    let app = h.app();
    for _ in 0..2 {
        let (status, body) = send(
            &app,
            post_json("/api/v1/queue/backtest/create-and-run", &spec_request(id)),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _) = send(&app, get("/api/v1/strategies/999")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, queue) = send(&app, get("/api/v1/queue/state")).await;
    assert_eq!(status, StatusCode::OK, "{queue}");
    assert_eq!(queue["waiting"], json!({"high": 0, "normal": 2, "low": 0}));
    assert_eq!(queue["pending"]["normal"], 0);
    assert_eq!(
        (queue["dlq"].as_u64(), queue["delayed"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(queue["oldest_wait_ms"].is_u64(), "{queue}");
    assert_eq!(queue["workers"], json!([]));
    assert_eq!(queue["counters"]["tasks_submitted"], 2);
    let (status, history) = send(&app, get("/api/v1/queue/history?minutes=5")).await;
    assert_eq!(status, StatusCode::OK, "{history}");
    let minutes = history["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 5);
    assert!(
        minutes.iter().all(|m| m["completed"] == 0),
        "nothing ran yet"
    );
    for bad in ["0", "121"] {
        let (status, reply) =
            send(&app, get(&format!("/api/v1/queue/history?minutes={bad}"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
        assert_eq!(reply["error"]["field"], "minutes");
    }

    let response = app.clone().oneshot(get("/metrics")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let lines: BTreeSet<&str> = text.lines().collect();
    for line in [
        "stratbox_redis_up 1",
        "stratbox_queue_waiting{class=\"normal\"} 2",
        "stratbox_queue_waiting{class=\"high\"} 0",
        "stratbox_queue_pending{class=\"normal\"} 0",
        "stratbox_queue_dlq_length 0",
        "stratbox_workers_live 0",
        "stratbox_tasks_submitted_total 2",
        "stratbox_tasks_completed_total 0",
        "stratbox_tasks_failed_total 0",
        "stratbox_tasks_timeout_total 0",
        "stratbox_active_tasks 0",
        "# TYPE stratbox_task_duration_seconds histogram",
        "stratbox_task_duration_seconds_count{outcome=\"completed\"} 0",
        "stratbox_task_duration_seconds_bucket{outcome=\"completed\",le=\"+Inf\"} 0",
        "stratbox_http_requests_total{method=\"POST\",route=\"/api/v1/queue/backtest/create-and-run\",status=\"200\"} 2",
        "stratbox_http_requests_total{method=\"GET\",route=\"/api/v1/strategies/{id}\",status=\"404\"} 1",
        "stratbox_http_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/queue/backtest/create-and-run\"} 2",
    ] {
        assert!(lines.contains(line), "missing {line:?} in:\n{text}");
    }
    // Two tasks wait: the oldest has waited some time, never a negative one.
    let oldest = text
        .lines()
        .find_map(|l| l.strip_prefix("stratbox_queue_oldest_wait_seconds "))
        .unwrap_or_else(|| panic!("no oldest wait in:\n{text}"));
    assert!(oldest.parse::<f64>().unwrap() >= 0.0, "{oldest}");
    // Every sample line is `name{labels} value` with a numeric value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample {line:?}");
    }
}

#[tokio::test]
async fn mutating_routes_need_the_token_when_one_is_set() {
    let h = Harness::start("api-auth", Some("s3cret")).await;
    let app = h.app();
    let body = json!({"backtest_id": 1});
    let (status, reply) = send(&app, post_json("/api/v1/queue/backtest/run", &body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    assert_eq!(reply["error"]["code"], "unauthorized");
    let mut wrong = post_json("/api/v1/queue/backtest/run", &body);
    wrong
        .headers_mut()
        .insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
    assert_eq!(send(&app, wrong).await.0, StatusCode::UNAUTHORIZED);
    let mut right = post_json("/api/v1/queue/backtest/run", &body);
    right
        .headers_mut()
        .insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
    // Past auth: the backtest does not exist.
    assert_eq!(send(&app, right).await.0, StatusCode::NOT_FOUND);
    let (status, _) = send(&app, get("/api/v1/queue/metrics")).await;
    assert_eq!(status, StatusCode::OK);
    let delete = Request::delete("/api/v1/queue/dlq")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, delete).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn uploads_are_checked_by_the_sandbox_and_limited() {
    let h = Harness::start("api-upload", None).await;
    let app = h.app();
    let upload = |bytes: Vec<u8>| {
        Request::post("/api/v1/strategies")
            .header(header::CONTENT_TYPE, "application/wasm")
            .body(Body::from(bytes))
            .unwrap()
    };
    let (status, reply) = send(&app, upload(b"hello".to_vec())).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert_eq!(reply["error"]["code"], "invalid_plugin");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not a WebAssembly file"),
        "{reply}"
    );
    // A core module (not a component) is refused with the reason.
    let core = b"\0asm\x01\0\0\0".to_vec();
    let (status, reply) = send(&app, upload(core)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("core WebAssembly module"),
        "{reply}"
    );
    let (status, reply) = send(&app, upload(vec![0; super::PLUGIN_BODY_LIMIT + 1])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{reply}");
    assert_eq!(reply["error"]["code"], "payload_too_large");
    let (status, reply) = send(&app, get("/api/v1/strategies")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply, json!({"strategies": []}));
    let (status, _) = send(&app, get("/api/v1/strategies/4")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let id = h.fake_strategy().await;
    let (status, reply) = send(&app, get(&format!("/api/v1/strategies/{id}"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["name"], "ema-crossover");
    assert_eq!(reply["params"][0]["name"], "fast_period");
    let delete = |id: u64| {
        Request::delete(format!("/api/v1/strategies/{id}"))
            .body(Body::empty())
            .unwrap()
    };
    // A queued backtest needs it: 409 naming the task, until it ends.
    h.candles(100).await;
    let (status, submitted) = send(
        &app,
        post_json("/api/v1/queue/backtest/create-and-run", &spec_request(id)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{submitted}");
    let task_id = submitted["task_id"].as_str().unwrap();
    let (status, reply) = send(&app, delete(id)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert_eq!(reply["error"]["code"], "conflict");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains(task_id),
        "{reply}"
    );
    let (status, _) = send(&app, get(&format!("/api/v1/strategies/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "still there");
    let cancel = Request::delete(format!("/api/v1/queue/tasks/{task_id}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, cancel).await.0, StatusCode::OK);

    assert_eq!(send(&app, delete(id)).await.0, StatusCode::NO_CONTENT);
    assert_eq!(send(&app, delete(id)).await.0, StatusCode::NOT_FOUND);

    // The state of a background compile: a bad sha256 names the field, an
    // unknown one is 404 (the 202 path itself is in the e2e `languages`).
    let (status, reply) = send(&app, get("/api/v1/strategies/uploads/xyz")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert_eq!(reply["error"]["field"], "sha256", "{reply}");
    let unknown = "ab".repeat(32);
    let (status, reply) = send(&app, get(&format!("/api/v1/strategies/uploads/{unknown}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no upload"),
        "{reply}"
    );
}

#[tokio::test]
async fn candles_import_names_the_bad_line_and_lists_series() {
    let h = Harness::start("api-candles", None).await;
    let app = h.app();
    let csv = |text: &str| {
        Request::post("/api/v1/candles/btcusdt/1h")
            .header(header::CONTENT_TYPE, "text/csv")
            .body(Body::from(text.to_string()))
            .unwrap()
    };
    let good = "ts,open,high,low,close,volume\n\
                1704067200,100,110,90,105,1\n\
                1704070800,105,112,101,108,2\n";
    let (status, reply) = send(&app, csv(good)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["symbol"], "BTCUSDT");
    assert_eq!(reply["timeframe"], "1h");
    assert_eq!(reply["rows"], 2);
    assert_eq!(reply["first_ts"], 1_704_067_200);
    assert_eq!(reply["last_ts"], 1_704_070_800);

    let bad = "ts,open,high,low,close,volume\n\
               1704074400,100,110,90,105,1\n\
               1704078000,105,99,101,108,2\n";
    let (status, reply) = send(&app, csv(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert_eq!(reply["error"]["code"], "invalid_csv");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains("line 3, column high"), "{message}");

    let (status, reply) = send(
        &app,
        Request::post("/api/v1/candles/BTCUSDT/1q")
            .body(Body::from(good))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert_eq!(reply["error"]["field"], "timeframe");

    let (status, reply) = send(&app, get("/api/v1/candles")).await;
    assert_eq!(status, StatusCode::OK);
    let series = reply["series"].as_array().unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0]["rows"], 2);
}

#[tokio::test]
async fn backtests_tasks_and_the_dlq() {
    let h = Harness::start("api-records", None).await;
    let id = h.fake_strategy().await;
    h.candles(9_000).await;
    let app = h.app();
    let (_, created) = send(
        &app,
        post_json("/api/v1/queue/backtest/create-and-run", &spec_request(id)),
    )
    .await;
    let backtest_id = created["backtest_id"].as_u64().unwrap();
    let task_id = created["task_id"].as_str().unwrap().to_string();

    let (status, bt) = send(&app, get(&format!("/api/v1/backtests/{backtest_id}"))).await;
    assert_eq!(status, StatusCode::OK, "{bt}");
    assert_eq!(bt["status"], "queued");
    assert_eq!(bt["report"], Value::Null);
    assert_eq!(bt["task_id"], task_id.as_str());
    for key in ["backtest_id", "status", "progress", "report", "error"] {
        assert!(bt.get(key).is_some(), "{key} missing: {bt}");
    }

    let (status, task) = send(&app, get(&format!("/api/v1/queue/tasks/{task_id}"))).await;
    assert_eq!(status, StatusCode::OK, "{task}");
    assert_eq!(task["status"], "queued");
    let cancel = || {
        Request::delete(format!("/api/v1/queue/tasks/{task_id}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, reply) = send(&app, cancel()).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["status"], "cancelled");
    let (status, reply) = send(&app, cancel()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    let (status, _) = send(&app, get("/api/v1/queue/tasks/nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // A stored report comes back as JSON, not as a string.
    let mut conn = h.state.store.connection();
    let () = redis::cmd("HSET")
        .arg(h.state.store.keys().backtest(backtest_id))
        .arg("report")
        .arg(r#"{"final_equity":10500.5,"trades":[]}"#)
        .query_async(&mut conn)
        .await
        .unwrap();
    let (_, bt) = send(&app, get(&format!("/api/v1/backtests/{backtest_id}"))).await;
    assert_eq!(bt["report"]["final_equity"], 10500.5);
    let (status, _) = send(&app, get("/api/v1/backtests/999")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = send(&app, get("/api/v1/backtests/abc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The listing: newest first, headline figures from the report.
    let (status, second) = send(
        &app,
        post_json("/api/v1/queue/backtest/create-and-run", &spec_request(id)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let (status, list) = send(&app, get("/api/v1/backtests?limit=10")).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let items = list["backtests"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["backtest_id"], second["backtest_id"]);
    assert_eq!(items[0]["status"], "queued");
    assert_eq!(items[1]["backtest_id"], backtest_id);
    assert_eq!(items[1]["final_equity"], 10500.5);
    assert_eq!(items[1]["symbol"], "BTCUSDT");
    assert_eq!(items[1]["timeframe"], "1h");
    assert_eq!(items[1]["start_date"], "2024-01-01T00:00:00Z");
    assert_eq!(items[1]["end_date"], "2024-12-31T00:00:00Z");
    assert!(items[1].get("report").is_none());
    let (_, one) = send(&app, get("/api/v1/backtests?limit=1")).await;
    assert_eq!(one["backtests"].as_array().unwrap().len(), 1);
    for bad in ["0", "501", "x"] {
        let (status, reply) = send(&app, get(&format!("/api/v1/backtests?limit={bad}"))).await;
        assert!(status.is_client_error(), "{bad}: {status} {reply}");
    }

    let (status, reply) = send(&app, get("/api/v1/queue/dlq")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply, json!({"entries": []}));
    let requeue = Request::post("/api/v1/queue/dlq/requeue")
        .body(Body::empty())
        .unwrap();
    let (status, reply) = send(&app, requeue).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply, json!({"requeued": 0}));
    let purge = Request::delete("/api/v1/queue/dlq")
        .body(Body::empty())
        .unwrap();
    let (status, reply) = send(&app, purge).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply, json!({"purged": 0}));
}

#[tokio::test]
async fn openapi_and_swagger_ui_are_served() {
    let h = Harness::start("api-docs", None).await;
    let app = h.app();
    let (status, doc) = send(&app, get("/api-docs/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/api/v1/queue/backtest/create-and-run",
        "/api/v1/queue/health",
        "/api/v1/strategies",
        "/api/v1/backtests/{id}",
    ] {
        assert!(paths.contains_key(path), "{path} missing");
    }
    // The perpetual fields of create-and-run: shown, optional.
    let create = &doc["components"]["schemas"]["CreateAndRunRequest"];
    for field in ["market", "funding_rate"] {
        assert!(create["properties"][field].is_object(), "{field}: {create}");
        let required = create["required"].as_array().unwrap();
        assert!(!required.contains(&json!(field)), "{field}: {create}");
    }
    let market = &doc["components"]["schemas"]["Market"]["enum"];
    assert_eq!(*market, json!(["spot", "linear_perpetual"]), "{doc}");
    let response = app.clone().oneshot(get("/docs/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let (status, reply) = send(&app, get("/api/v1/nothing")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(reply["error"]["code"], "not_found");
    let response = app.oneshot(get("/api/v1/queue/metrics")).await.unwrap();
    assert!(response.headers().contains_key("x-request-id"));
}

#[tokio::test]
async fn schedules_are_checked_listed_paused_and_deleted() {
    let h = Harness::start("api-schedules", None).await;
    let id = h.fake_strategy().await;
    h.candles(9_000).await;
    let app = h.app();
    let (status, empty) = send(&app, get("/api/v1/schedules")).await;
    assert_eq!((status, empty), (StatusCode::OK, json!({"schedules": []})));
    let create = |body: Value| post_json("/api/v1/schedules", &body);
    let mut bad_param = spec_request(id);
    bad_param["config"]["params"]["fast_period"] = json!(0);
    for (body, status, field) in [
        (
            json!({"cron": "61 * * * *", "backtest": spec_request(id)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cron",
        ),
        (
            json!({"cron": "every day", "backtest": spec_request(id)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cron",
        ),
        (
            json!({"every_secs": 0, "backtest": spec_request(id)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "every_secs",
        ),
        (
            json!({"backtest": spec_request(id)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "cron",
        ),
        (
            json!({"every_secs": 60, "start_at": "2030-01-02T00:00:00Z", "end_at": "2030-01-01T00:00:00Z", "backtest": spec_request(id)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "end_at",
        ),
        (
            json!({"every_secs": 60, "backtest": spec_request(999)}),
            StatusCode::NOT_FOUND,
            "backtest.strategy_id",
        ),
        (
            json!({"every_secs": 60, "backtest": bad_param}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "backtest.config.params.fast_period",
        ),
    ] {
        let (got, reply) = send(&app, create(body.clone())).await;
        assert_eq!(got, status, "{body}: {reply}");
        assert_eq!(reply["error"]["field"], field, "{body}: {reply}");
    }
    assert_eq!(h.stream_len().await, 0, "nothing queued");

    let (status, created) = send(
        &app,
        create(json!({"name": "nightly", "cron": "0 2 * * *", "backtest": spec_request(id)})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["paused"], false);
    assert_eq!(created["runs"], 0);
    let next = created["next_run"].as_str().unwrap();
    assert!(next.ends_with("T02:00:00Z"), "{next}");
    let schedule_id = created["schedule_id"].as_u64().unwrap();

    let (_, list) = send(&app, get("/api/v1/schedules")).await;
    assert_eq!(list["schedules"].as_array().unwrap().len(), 1);
    let (status, paused) = send(
        &app,
        post_json(
            &format!("/api/v1/schedules/{schedule_id}/pause"),
            &json!({}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{paused}");
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["next_run"], Value::Null);
    let (_, resumed) = send(
        &app,
        post_json(
            &format!("/api/v1/schedules/{schedule_id}/resume"),
            &json!({}),
        ),
    )
    .await;
    assert_eq!(resumed["paused"], false);
    assert_eq!(resumed["next_run"], created["next_run"]);
    let delete = Request::delete(format!("/api/v1/schedules/{schedule_id}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, delete).await.0, StatusCode::NO_CONTENT);
    let (status, _) = send(&app, get(&format!("/api/v1/schedules/{schedule_id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_dashboard_page_is_served_with_validators_and_a_strict_policy() {
    let h = Harness::start("api-dashboard-page", Some("s3cret")).await;
    let app = h.app();
    let root = app.clone().oneshot(get("/")).await.unwrap();
    assert!(root.status().is_redirection());
    assert_eq!(root.headers()[header::LOCATION], "/dashboard/");

    // The shell holds no data: it loads without the token.
    let page = app.clone().oneshot(get("/dashboard/")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
    let body = axum::body::to_bytes(page.into_body(), usize::MAX)
        .await
        .unwrap();
    let html = String::from_utf8(body.to_vec()).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "{html}"
    );

    // A revalidation with the ETag costs a 304 and no body.
    let etag = headers[header::ETAG].clone();
    let again = Request::get("/dashboard/")
        .header(header::IF_NONE_MATCH, etag)
        .body(Body::empty())
        .unwrap();
    let (status, body) = send(&app, again).await;
    assert_eq!((status, body), (StatusCode::NOT_MODIFIED, Value::Null));

    let (status, _) = send(&app, get("/dashboard/assets/uPlot.iife.min.js")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, reply) = send(&app, get("/dashboard/assets/secrets.txt")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(reply["error"]["code"], "asset_not_found");
}

#[tokio::test]
async fn the_dashboard_data_needs_the_token_on_every_method_when_one_is_set() {
    let h = Harness::start("api-dashboard-auth", Some("s3cret")).await;
    let app = h.app();
    for path in [
        "/dashboard/api/queue/state",
        "/dashboard/api/queue/history",
        "/dashboard/api/queue/dlq",
        "/dashboard/api/backtests",
        "/dashboard/api/optimizations",
        "/dashboard/api/schedules",
    ] {
        let (status, reply) = send(&app, get(path)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {reply}");
        let with = Request::get(path)
            .header(header::AUTHORIZATION, "Bearer s3cret")
            .body(Body::empty())
            .unwrap();
        let (status, reply) = send(&app, with).await;
        assert_eq!(status, StatusCode::OK, "{path}: {reply}");
    }
    // Its buttons' routes too.
    for (method, path) in [
        ("POST", "/dashboard/api/queue/dlq/requeue"),
        ("DELETE", "/dashboard/api/queue/dlq"),
        ("DELETE", "/dashboard/api/queue/tasks/some-task"),
        ("POST", "/dashboard/api/optimizations/1/cancel"),
        ("DELETE", "/dashboard/api/optimizations/1"),
        ("DELETE", "/dashboard/api/backtests/1"),
        ("POST", "/dashboard/api/schedules/1/pause"),
        ("POST", "/dashboard/api/schedules/1/resume"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let (status, _) = send(&app, request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // The documented API keeps its open reads.
    assert_eq!(
        send(&app, get("/api/v1/queue/state")).await.0,
        StatusCode::OK
    );

    let open = Harness::start("api-dashboard-open", None).await;
    let (status, reply) = send(&open.app(), get("/dashboard/api/queue/state")).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(reply["workers"].is_array(), "{reply}");
}

#[tokio::test]
async fn optimizations_are_listed_and_the_limit_is_checked() {
    let h = Harness::start("api-optimization-list", None).await;
    let app = h.app();
    let (status, reply) = send(&app, get("/api/v1/optimizations")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reply["optimizations"], json!([]));
    let (status, reply) = send(&app, get("/api/v1/optimizations?limit=0")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(reply["error"]["field"], "limit");
}

/// An optimization create-and-run body: a 2 x 2 grid with a hold-out.
fn optimization_request(strategy_id: u64) -> Value {
    json!({"strategy_id": strategy_id, "symbol": "BTCUSDT", "timeframe": "1h",
       "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-03-01T00:00:00Z",
       "config": {"name": "EMA sweep"},
       "search_space": {"fast_period": {"min": 5, "max": 10, "step": 5}, "slow_period": [20, 30]},
       "objective": {"metric": "total_return_pct", "direction": "maximize"},
       "min_trades": 1, "constraint": "fast_period < slow_period",
       "holdout": {"split": "2024-02-15T00:00:00Z"}, "priority": 8})
}

#[tokio::test]
async fn schedules_of_optimizations_are_checked_in_full_shown_and_fired() {
    let h = Harness::start("api-schedules-opt", None).await;
    let id = h.fake_strategy().await;
    h.candles(9_000).await;
    let app = h.app();
    let create = |body: Value| post_json("/api/v1/schedules", &body);
    let with = |path: &[&str], value: Value| {
        let mut body = optimization_request(id);
        let mut at = &mut body;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = value;
        json!({"every_secs": 60, "optimization": body})
    };
    let cases = [
        (
            json!({"every_secs": 60, "backtest": spec_request(id), "optimization": optimization_request(id)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "optimization",
        ),
        (
            json!({"every_secs": 60}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "backtest",
        ),
        (
            with(&["search_space", "nope"], json!([1, 2])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "optimization.search_space.nope",
        ),
        (
            with(
                &["search_space", "fast_period"],
                json!({"min": 5, "max": 900, "step": 5}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "optimization.search_space.fast_period.max",
        ),
        (
            with(
                &["search_space", "fast_period"],
                json!({"min": 5, "max": 10, "step": 0}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "optimization.search_space.fast_period.step",
        ),
        (
            with(
                &["search_space"],
                json!({"fast_period": {"min": 1, "max": 500}, "slow_period": {"min": 1, "max": 500}}),
            ),
            StatusCode::UNPROCESSABLE_ENTITY,
            "optimization.search_space",
        ),
        (
            with(&["objective", "metric"], json!("sharp")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "optimization.objective.metric",
        ),
        (
            with(&["objective", "direction"], json!("up")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "optimization.objective.direction",
        ),
        (
            with(&["constraint"], json!("fast_period < slowest")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "optimization.constraint",
        ),
        (
            with(&["holdout", "split"], json!("2024-06-01T00:00:00Z")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "optimization.holdout.split",
        ),
        (
            with(&["holdout", "split"], json!([0.5])),
            StatusCode::UNPROCESSABLE_ENTITY,
            "optimization.holdout.split",
        ),
        (
            with(&["config", "params"], json!({"bogus": 1})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "optimization.config.params.bogus",
        ),
        (
            with(&["method"], json!("random")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "optimization.samples",
        ),
        (
            with(&["start_date"], json!("2024-04-01T00:00:00Z")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "optimization.start_date",
        ),
        (
            with(&["strategy_id"], json!(999)),
            StatusCode::NOT_FOUND,
            "optimization.strategy_id",
        ),
        (
            with(&["symbol"], json!("ETHUSDT")),
            StatusCode::NOT_FOUND,
            "optimization.symbol",
        ),
    ];
    for (body, status, field) in cases {
        let (got, reply) = send(&app, create(body.clone())).await;
        assert_eq!(got, status, "{body}: {reply}");
        assert_eq!(reply["error"]["field"], field, "{body}: {reply}");
    }
    // Nothing stored, queued or recorded.
    let (_, list) = send(&app, get("/api/v1/schedules")).await;
    assert_eq!(list, json!({"schedules": []}));
    assert_eq!(h.stream_len().await, 0);
    let ids: Option<u64> = redis::cmd("GET")
        .arg(h.state.store.keys().optimization_next_id())
        .query_async(&mut h.state.store.connection())
        .await
        .unwrap();
    assert_eq!(ids, None, "no optimization id was taken");

    let (status, created) = send(
        &app,
        create(json!({"name": "weekly sweep", "every_secs": 60, "optimization": optimization_request(id)})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["submits"], "optimization");
    assert_eq!(created["strategy_id"], id);
    assert_eq!(
        (&created["symbol"], &created["timeframe"]),
        (&json!("BTCUSDT"), &json!("1h"))
    );
    assert_eq!(
        (&created["start_date"], &created["end_date"]),
        (
            &json!("2024-01-01T00:00:00Z"),
            &json!("2024-03-01T00:00:00Z")
        )
    );
    assert_eq!(
        created["search_params"],
        json!(["fast_period", "slow_period"])
    );
    assert_eq!(
        created["objective"],
        json!({"metric": "total_return_pct", "direction": "maximize", "min_trades": 1})
    );
    assert_eq!(
        (
            &created["last_optimization_id"],
            &created["last_backtest_id"]
        ),
        (&Value::Null, &Value::Null)
    );
    assert_eq!(h.stream_len().await, 0, "nothing queued before it is due");
    let schedule_id = created["schedule_id"].as_u64().unwrap();

    // Its occurrence, fired as the scheduler loop would.
    let record = h
        .state
        .store
        .get_schedule(schedule_id)
        .await
        .unwrap()
        .unwrap();
    let due = record.next_run_ms.unwrap();
    let firing =
        stratbox_service::scheduler::fire(&h.state.store, &h.state.queue, schedule_id, due)
            .await
            .unwrap();
    let stratbox_service::scheduler::Firing::Optimization {
        optimization_id,
        task_id,
    } = firing
    else {
        panic!("{firing:?}");
    };
    let (_, shown) = send(&app, get(&format!("/api/v1/schedules/{schedule_id}"))).await;
    assert_eq!(shown["last_optimization_id"], optimization_id);
    assert_eq!(shown["runs"], 1);
    assert_eq!(shown["last_error"], Value::Null);
    let (status, got) = send(
        &app,
        get(&format!("/api/v1/optimizations/{optimization_id}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["status"], "queued");
    assert_eq!(got["task_id"], task_id.as_str());
    assert_eq!(got["combinations"], 4);
    assert_eq!(got["name"], "EMA sweep");
    let task = h.state.queue.task(&task_id).await.unwrap().unwrap();
    assert_eq!((task.kind.as_str(), task.priority), ("optimization", 8));
    let (_, listed) = send(&app, get("/api/v1/optimizations")).await;
    assert_eq!(
        listed["optimizations"][0]["optimization_id"],
        optimization_id
    );

    // A backtest schedule says so, with no search.
    let (status, backtest) = send(
        &app,
        create(json!({"cron": "0 2 * * *", "backtest": spec_request(id)})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{backtest}");
    assert_eq!(backtest["submits"], "backtest");
    assert_eq!(
        (&backtest["search_params"], &backtest["objective"]),
        (&Value::Null, &Value::Null)
    );
    let (_, list) = send(&app, get("/api/v1/schedules")).await;
    let kinds: Vec<&Value> = list["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["submits"])
        .collect();
    assert_eq!(kinds, [&json!("optimization"), &json!("backtest")]);
}

#[tokio::test]
async fn market_data_imports_are_checked_whole_and_name_the_line_or_field() {
    let h = Harness::start("api-market-data", None).await;
    let app = h.app();
    let body = |uri: &str, content_type: &str, text: &str| {
        Request::post(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(text.to_string()))
            .unwrap()
    };

    // Funding: CSV or JSON, merged; bad rows name their line, store nothing.
    let (status, reply) = send(
        &app,
        body(
            "/api/v1/funding/ethusdt",
            "text/csv",
            "ts,rate\n1704067200,0.0001\n1704096000,-0.0002\n",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        (reply["symbol"].as_str(), reply["rows"].as_u64()),
        (Some("ETHUSDT"), Some(2))
    );
    let json_rows = json!([{"ts": 1_704_124_800, "rate": 0.0003}]).to_string();
    let (status, reply) = send(
        &app,
        body("/api/v1/funding/ETHUSDT", "application/json", &json_rows),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["rows"], 3);
    let bad_funding = [
        ("ts,rate\n200,0.1\n100,0.1\n", "CSV line 3"),
        ("ts,rate\n100,0.1\n200,abc\n", "CSV line 3"),
        ("time,rate\n100,0.1\n", "CSV line 1"),
    ];
    for (csv, named) in bad_funding {
        let (status, reply) = send(&app, body("/api/v1/funding/SOLUSDT", "text/csv", csv)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{csv}: {reply}");
        assert_eq!(reply["error"]["code"], "invalid_csv", "{reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(message.contains(named), "{csv}: {message}");
    }
    let out_of_order = json!([{"ts": 200, "rate": 0.1}, {"ts": 100, "rate": 0.1}]).to_string();
    let (status, reply) = send(
        &app,
        body("/api/v1/funding/SOLUSDT", "application/json", &out_of_order),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("row 1"),
        "{reply}"
    );
    let (_, held) = send(&app, get("/api/v1/funding/SOLUSDT")).await;
    assert_eq!(held["rows"], json!([]), "nothing stored: {held}");
    let (_, held) = send(&app, get("/api/v1/funding/ETHUSDT")).await;
    assert_eq!(
        held["rows"][2],
        json!({"ts": 1_704_124_800, "rate": 0.0003})
    );

    // Instruments: every field checked and named; nothing stored on error.
    let instrument = json!({"tick_size": 0.01, "qty_step": 0.01, "min_qty": 0.01,
        "max_leverage": 25.0, "maker_fee": 0.0002, "taker_fee": 0.00055,
        "tiers": [{"up_to_value": 1e6, "mmr": 0.01, "mm_deduction": 0.0}]});
    let (status, reply) = send(&app, post_json("/api/v1/instruments/ethusdt", &instrument)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["symbol"], "ETHUSDT");
    assert_eq!(
        reply["risk_tiers"][0]["mmr"], 0.01,
        "tiers read as risk_tiers"
    );
    let (status, reply) = send(&app, get("/api/v1/instruments/ETHUSDT")).await;
    assert_eq!(
        (status, reply["max_leverage"].as_f64()),
        (StatusCode::OK, Some(25.0))
    );
    let spoiled = [
        ("qty_step", json!(0.0)),
        ("tick_size", json!(-0.1)),
        ("max_leverage", json!(0.5)),
        ("taker_fee", json!(0.5)),
    ];
    for (field, value) in spoiled {
        let mut bad = instrument.clone();
        bad[field] = value;
        let (status, reply) = send(&app, post_json("/api/v1/instruments/SOLUSDT", &bad)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {reply}");
        assert_eq!(reply["error"]["field"], field, "{reply}");
    }
    let mut other = instrument.clone();
    other["symbol"] = json!("BTCUSDT");
    let (status, reply) = send(&app, post_json("/api/v1/instruments/SOLUSDT", &other)).await;
    assert_eq!(
        (status, reply["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("symbol"))
    );
    let (status, _) = send(&app, get("/api/v1/instruments/SOLUSDT")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing stored");

    // Marks: a series short of a perpetual run's ends is refused at
    // submission, naming mark, and nothing is queued.
    h.candles(48).await;
    let strategy_id = h.fake_strategy().await;
    let marks = stratbox_engine::candles::synth(24, 7, HOUR, START + 12 * HOUR, 42_000.0);
    let mut csv = Vec::new();
    stratbox_engine::candles::write_csv(&marks, &mut csv).unwrap();
    let (status, reply) = send(
        &app,
        body(
            "/api/v1/mark/BTCUSDT/1h",
            "text/csv",
            std::str::from_utf8(&csv).unwrap(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["symbol"], "BTCUSDT.MARK");
    let mut run = spec_request(strategy_id);
    run["end_date"] = json!("2024-01-02T23:00:00Z");
    run["market"] = json!("linear_perpetual");
    let (status, reply) = send(
        &app,
        post_json("/api/v1/queue/backtest/create-and-run", &run),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reply}");
    assert_eq!(reply["error"]["field"], "mark", "{reply}");
    assert_eq!(h.stream_len().await, 0, "nothing queued");
    // Within the marks it runs.
    run["start_date"] = json!("2024-01-01T12:00:00Z");
    run["end_date"] = json!("2024-01-02T11:00:00Z");
    let (status, reply) = send(
        &app,
        post_json("/api/v1/queue/backtest/create-and-run", &run),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{reply}");

    // A queued fetch: bad fields named, nothing queued; a good one queued.
    let fetch = json!({"symbol": "BTCUSDT", "interval": "60",
        "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-01-02T00:00:00Z"});
    let queued_before = h.stream_len().await;
    for (field, value, named) in [
        ("interval", json!("7"), "interval"),
        ("end_date", json!("2023-01-01T00:00:00Z"), "start_date"),
        ("bogus", json!(1), "body"),
    ] {
        let mut bad = fetch.clone();
        bad[field] = value;
        let (status, reply) = send(&app, post_json("/api/v1/data/fetch", &bad)).await;
        assert!(status.is_client_error(), "{field}: {status} {reply}");
        let message = reply.to_string();
        assert!(
            message.contains(named) || message.contains(field),
            "{field}: {reply}"
        );
    }
    assert_eq!(h.stream_len().await, queued_before, "nothing queued");
    let (status, reply) = send(&app, post_json("/api/v1/data/fetch", &fetch)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    let task_id = reply["task_id"].as_str().unwrap();
    let (status, reply) = send(&app, get(&format!("/api/v1/data/fetch/{task_id}"))).await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (StatusCode::OK, Some("queued")),
        "{reply}"
    );
    let (status, _) = send(&app, get("/api/v1/data/fetch/no-such-task")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn per_task_limits_are_bounded_named_and_reach_the_task() {
    let h = Harness::start("api-task-limits", None).await;
    let app = h.app();
    h.candles(300).await;
    let strategy_id = h.fake_strategy().await;
    let path = "/api/v1/queue/backtest/create-and-run";
    let caps = stratbox_service::tasks::LimitCaps::from_env();
    for (field, value) in [
        ("fuel", json!(0)),
        ("fuel", json!(caps.max_fuel + 1)),
        ("memory_mib", json!(0)),
        ("memory_mib", json!(caps.max_memory_mib + 1)),
        ("timeout_ms", json!(caps.max_timeout_ms + 1)),
    ] {
        let mut request = spec_request(strategy_id);
        request[field] = value.clone();
        let (status, reply) = send(&app, post_json(path, &request)).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}={value}: {reply}"
        );
        assert_eq!(reply["error"]["field"], field, "{reply}");
    }
    assert_eq!(h.stream_len().await, 0, "nothing queued");

    let mut request = spec_request(strategy_id);
    request["fuel"] = json!(123_456_789);
    request["memory_mib"] = json!(16);
    request["timeout_ms"] = json!(4_321);
    let (status, reply) = send(&app, post_json(path, &request)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let task = h
        .state
        .queue
        .task(reply["task_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        task.fields.get("timeout_ms").map(String::as_str),
        Some("4321")
    );
    let record = h
        .state
        .store
        .get_backtest(reply["backtest_id"].as_u64().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        record.definition.limits,
        stratbox_store::TaskLimits {
            fuel: Some(123_456_789),
            memory_mib: Some(16),
            timeout_ms: Some(4_321),
        }
    );
    // Without limits the definition is written as before.
    let (status, reply) = send(&app, post_json(path, &spec_request(strategy_id))).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let record = h
        .state
        .store
        .get_backtest(reply["backtest_id"].as_u64().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(record.definition.limits.is_unset());
}

#[tokio::test]
async fn candles_import_ignores_extra_columns_and_refuses_bars_off_the_timeframe() {
    let h = Harness::start("api-candles-spacing", None).await;
    let app = h.app();
    let csv = |uri: &str, text: &str| {
        Request::post(uri)
            .header(header::CONTENT_TYPE, "text/csv")
            .body(Body::from(text.to_string()))
            .unwrap()
    };
    // Bybit's kline columns, turnover last.
    let bybit = "ts,open,high,low,close,volume,turnover\n\
                 1704067200,100,110,90,105,1,105\n\
                 1704070800,105,112,101,108,2,216\n\
                 1704081600,108,109,100,101,3,303\n";
    let (status, reply) = send(&app, csv("/api/v1/candles/BTCUSDT/1h", bybit)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["rows"], 3);
    assert_eq!(reply["last_ts"], 1_704_081_600);

    // 1-minute bars named 1h: refused at the first, naming the timeframe.
    let minutes = "ts,open,high,low,close,volume\n\
                   1704153600,100,110,90,105,1\n\
                   1704153660,105,112,101,108,2\n";
    for uri in [
        "/api/v1/candles/ETHUSDT/1h",
        "/api/v1/candles/BTCUSDT/1h",
        "/api/v1/mark/ETHUSDT/1h",
    ] {
        let (status, reply) = send(&app, csv(uri, minutes)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}: {reply}");
        assert_eq!(reply["error"]["code"], "invalid_csv", "{uri}: {reply}");
        assert_eq!(
            reply["error"]["message"],
            "invalid body: line 3, column ts: 60 s after the previous bar (line 2); \
             a 1h series needs multiples of 3600 s",
            "{uri}"
        );
    }
    // Nothing stored by the refusals.
    let (status, reply) = send(&app, get("/api/v1/candles")).await;
    assert_eq!(status, StatusCode::OK);
    let series = reply["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{reply}");
    assert_eq!(
        (&series[0]["symbol"], &series[0]["rows"]),
        (&json!("BTCUSDT"), &json!(3))
    );
    // The same bars named 1m are a series.
    let (status, reply) = send(&app, csv("/api/v1/mark/ETHUSDT/1m", minutes)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["symbol"], "ETHUSDT.MARK");
    assert_eq!(reply["rows"], 2);
}

mod ops;
mod tenants;

fn delete(uri: &str) -> Request<Body> {
    Request::delete(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_finished_backtest_is_deleted_whole_and_a_live_one_is_a_409() {
    let h = Harness::start("api-delete-backtest", None).await;
    let id = h.fake_strategy().await;
    h.candles(9_000).await;
    let app = h.app();
    let (status, created) = send(
        &app,
        post_json("/api/v1/queue/backtest/create-and-run", &spec_request(id)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let backtest_id = created["backtest_id"].as_u64().unwrap();
    let task_id = created["task_id"].as_str().unwrap().to_string();
    let uri = format!("/api/v1/backtests/{backtest_id}");
    let record = h.state.store.keys().backtest(backtest_id);
    let homes = h.state.queue.keys().task_homes();
    let mut conn = h.state.store.connection();
    let home: Option<String> = redis::cmd("HGET")
        .arg(&homes)
        .arg(&task_id)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        home.as_deref(),
        Some(record.as_str()),
        "the record hosts its task"
    );

    // Queued, then running: refused, naming the way to cancel it.
    let (status, reply) = send(&app, delete(&uri)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert_eq!(reply["error"]["code"], "conflict");
    assert_eq!(
        reply["error"]["message"],
        format!(
            "backtest {backtest_id} is queued; cancel it first with \
             DELETE /api/v1/queue/tasks/{task_id}"
        )
    );
    let () = redis::cmd("HSET")
        .arg(&record)
        .arg("status")
        .arg("running")
        .query_async(&mut conn)
        .await
        .unwrap();
    let (status, reply) = send(&app, delete(&uri)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is running"),
        "{reply}"
    );
    let () = redis::cmd("HSET")
        .arg(&record)
        .arg("status")
        .arg("queued")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(send(&app, get(&uri)).await.0, StatusCode::OK, "kept");

    let cancel = delete(&format!("/api/v1/queue/tasks/{task_id}"));
    let (status, reply) = send(&app, cancel).await;
    assert_eq!(
        (status, reply["status"].as_str()),
        (StatusCode::OK, Some("cancelled"))
    );
    let (status, reply) = send(&app, delete(&uri)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{reply}");
    assert_eq!(reply, Value::Null, "no body");

    // Nothing of it is left: record, index entry, the queue's entry.
    let (status, reply) = send(&app, get(&uri)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    let (status, reply) = send(&app, delete(&uri)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{reply}");
    assert_eq!(reply["error"]["code"], "backtest_not_found");
    let (_, list) = send(&app, get("/api/v1/backtests")).await;
    assert_eq!(list["backtests"], json!([]));
    let (status, _) = send(&app, get(&format!("/api/v1/queue/tasks/{task_id}"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "its task went with it");
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{record}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
    let homes_len: u64 = redis::cmd("HLEN")
        .arg(&homes)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(homes_len, 0);
    let (status, _) = send(&app, delete("/api/v1/backtests/abc")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A token guards it like every DELETE.
    let guarded = Harness::start("api-delete-backtest-auth", Some("s3cret")).await;
    let (status, _) = send(&guarded.app(), delete("/api/v1/backtests/1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
