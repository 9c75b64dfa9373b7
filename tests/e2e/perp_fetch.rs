//! Bybit's data through the API: a queued `data_fetch` from a local server
//! in Bybit's shape stores candles, marks, funding and the instrument in
//! Redis; a 10x perpetual backtest through the API on them gives the
//! report `stratbox backtest` prints on the same data fetched into files
//! by `stratbox data fetch bybit --out`, liquidation included. Bad fetch
//! requests are refused before anything is queued; a fetch Bybit refuses
//! fails with Bybit's message and lands in the dead-letter stream.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stratbox_marketdata::fake::{FakeBybit, Fault, Market};

use super::api::{upload, Server};
use super::perp_api::{completed, local_cli, post, request};
use super::perp_cli::story_csv;
use super::service::{p, Service};
use super::support;

/// The story's first bar, and the end of its range (exclusive).
const START: &str = "2024-01-01T00:00:00Z";
const END_EXCLUSIVE: &str = "2024-01-03T14:00:00Z";
const T0: i64 = 1_704_067_200;

/// The story as Bybit would serve it: trades, marks a little
/// below the trades (so marks, not trades, liquidate), funding every 8 h.
fn story_market(dir: &std::path::Path) -> Market {
    let text = std::fs::read_to_string(story_csv(dir)).unwrap();
    let candles = stratbox_engine::candles::parse_csv(&text).unwrap();
    let mut market = Market::default();
    for i in 0..candles.len() {
        let ts_ms = candles.ts[i] * 1000;
        let (o, h, l, c) = (
            candles.open[i],
            candles.high[i],
            candles.low[i],
            candles.close[i],
        );
        market.bars.insert(ts_ms, [o, h, l, c, candles.volume[i]]);
        market
            .mark
            .insert(ts_ms, [o * 0.999, h * 0.999, l * 0.998, c * 0.999, 0.0]);
    }
    market.funding = (0..8)
        .map(|k| ((T0 + k * 8 * 3_600) * 1000, 0.0001 * (k as f64 - 2.0)))
        .collect::<BTreeMap<_, _>>();
    market.overlap = 1;
    market
}

fn fetch_body(extra: Value) -> Value {
    let mut body = json!({"symbol": "BTCUSDT", "category": "linear", "interval": "60",
        "start_date": START, "end_date": END_EXCLUSIVE,
        "mark": true, "funding": true, "instrument": true});
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            body[k] = v;
        }
    }
    body
}

/// The fetch once it has ended (completed or failed).
async fn fetch_ended(http: &reqwest::Client, server: &Server, task_id: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = server
            .get_json(http, &format!("/api/v1/data/fetch/{task_id}"))
            .await;
        assert_eq!(status, 200, "{body}");
        if matches!(body["status"].as_str(), Some("completed" | "failed")) {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "fetch not done: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn submitted(http: &reqwest::Client, server: &Server) -> i64 {
    let (_, body) = server.get_json(http, "/api/v1/queue/metrics").await;
    body["tasks_submitted"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_data_gives_the_same_perpetual_report_through_the_api_and_the_cli() {
    let svc = Service::start("perp_fetch").await;
    let fake = FakeBybit::start(story_market(&svc.dir));
    let server = Server::start(&svc);
    let _worker = svc.worker("w1", 2, &[("BYBIT_BASE_URL", fake.url())]);
    let http = support::http_client();
    server.wait_healthy(&http).await;

    // Bad requests name the field and queue nothing.
    let before = submitted(&http, &server).await;
    let cases = [
        (json!({"interval": "7"}), "interval"),
        (json!({"category": "option"}), "category"),
        (json!({"symbol": "btc usdt"}), "symbol"),
        (json!({"start_date": "2024-02-30T00:00:00Z"}), "start_date"),
        (json!({"end_date": "2023-12-01T00:00:00Z"}), "start_date"),
        (json!({"category": "spot"}), "mark"),
        (json!({"source": "binance"}), "source"),
    ];
    for (extra, field) in cases {
        let (status, body) = post(
            &http,
            &server,
            "/api/v1/data/fetch",
            fetch_body(extra.clone()),
        )
        .await;
        assert_eq!(status, 422, "{extra}: {body}");
        assert_eq!(body["error"]["field"], field, "{extra}: {body}");
    }
    assert_eq!(submitted(&http, &server).await, before, "nothing queued");
    assert!(fake.seen().is_empty(), "bad requests ask Bybit nothing");

    // The fetch, queued and done by the worker.
    let (status, queued) = post(&http, &server, "/api/v1/data/fetch", fetch_body(json!({}))).await;
    assert_eq!(status, 202, "{queued}");
    let task_id = queued["task_id"].as_str().unwrap().to_string();
    assert_eq!(
        queued["status_url"],
        format!("/api/v1/data/fetch/{task_id}")
    );
    let done = fetch_ended(&http, &server, &task_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let result = &done["result"];
    assert_eq!(result["candles"]["fetched"], 62, "{done}");
    assert_eq!(result["mark"]["fetched"], 62, "{done}");
    assert_eq!(result["candles"]["gaps"], json!([]), "{done}");
    assert_eq!(result["funding"], 8, "{done}");
    assert_eq!(result["instrument"]["max_leverage"], 100.0, "{done}");
    let (status, instrument) = server.get_json(&http, "/api/v1/instruments/BTCUSDT").await;
    assert_eq!(status, 200, "{instrument}");
    assert_eq!(
        instrument["risk_tiers"].as_array().unwrap().len(),
        2,
        "{instrument}"
    );
    let (_, funding) = server.get_json(&http, "/api/v1/funding/BTCUSDT").await;
    assert_eq!(
        funding["rows"][0],
        json!({"ts": T0, "rate": -0.0002}),
        "{funding}"
    );

    // Again: everything is held, no kline page is asked for.
    fake.clear_seen();
    let (status, again) = post(
        &http,
        &server,
        "/api/v1/data/fetch",
        fetch_body(json!({"funding": false, "instrument": false})),
    )
    .await;
    assert_eq!(status, 202, "{again}");
    let again = fetch_ended(&http, &server, again["task_id"].as_str().unwrap()).await;
    assert_eq!(again["result"]["candles"]["ranges"], 0, "{again}");
    assert!(fake.seen().is_empty(), "{:?}", fake.seen());

    // A 10x perpetual run on what was fetched.
    let (status, strategy) = upload(&http, &server, "ema-crossover").await;
    assert_eq!(status, 201, "{strategy}");
    let strategy_id = strategy["strategy_id"].as_u64().unwrap();
    let (status, created) = post(
        &http,
        &server,
        "/api/v1/queue/backtest/create-and-run",
        request(
            strategy_id,
            "BTCUSDT",
            json!({"market": "linear_perpetual"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let backtest_id = created["backtest_id"].as_u64().unwrap();
    let report = &completed(&http, &server, backtest_id).await["report"];
    assert_eq!(report["liquidations"], 1, "{report}");
    assert_eq!(report["funding_source"], "history", "{report}");

    // The CLI fetches the same into files and runs on them.
    let out = svc.dir.join("btc.csv");
    let url = fake.url().to_string();
    let fetch = support::stratbox(
        &svc.dir,
        &[
            "data",
            "fetch",
            "bybit",
            "--symbol",
            "BTCUSDT",
            "--category",
            "linear",
            "--interval",
            "60",
            "--start",
            START,
            "--end",
            END_EXCLUSIVE,
            "--mark",
            "--funding",
            "--instrument",
            "--out",
            p(&out),
            "--base-url",
            &url,
        ],
    );
    assert!(fetch.status.success(), "{}", support::stderr(&fetch));
    let record = svc.store.get_backtest(backtest_id).await.unwrap().unwrap();
    let local = local_cli(
        &svc,
        &record,
        &out,
        &[
            "--funding",
            p(&out.with_extension("funding.csv")),
            "--mark",
            p(&out.with_extension("mark.csv")),
            "--instrument",
            p(&out.with_extension("instrument.json")),
        ],
    );
    assert_eq!(record.report.as_deref(), Some(local.as_str()));

    // A fetch Bybit refuses fails with Bybit's message, into the DLQ.
    fake.edit(|m| {
        m.faults = BTreeMap::from([(
            0,
            Fault::RetCode(10001, "params error: symbol invalid".into()),
        )]);
    });
    fake.clear_seen();
    let (status, refused) = post(
        &http,
        &server,
        "/api/v1/data/fetch",
        fetch_body(json!({"symbol": "NOPEUSDT"})),
    )
    .await;
    assert_eq!(status, 202, "{refused}");
    let refused_id = refused["task_id"].as_str().unwrap().to_string();
    let failed = fetch_ended(&http, &server, &refused_id).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["error_code"], "bybit_error", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("retCode 10001: params error: symbol invalid"),
        "{failed}"
    );
    let (_, dlq) = server.get_json(&http, "/api/v1/queue/dlq").await;
    assert!(dlq.to_string().contains(&refused_id), "{dlq}");
    let (_, series) = server.get_json(&http, "/api/v1/candles").await;
    assert!(
        !series.to_string().contains("NOPEUSDT"),
        "nothing stored: {series}"
    );
}
