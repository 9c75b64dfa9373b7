//! A perpetual backtest through the HTTP API (`market`, `funding_rate` on
//! create-and-run): `stratbox serve` and a worker, both real processes,
//! give the report `stratbox backtest --market linear_perpetual --json`
//! prints for the same data and flags, liquidation included; bad
//! perpetual requests are refused before anything is queued.

use serde_json::{json, Value};
use stratbox_engine::perp::{Instrument, RiskTier};

use super::api::{upload, Server, TOKEN};
use super::perp_cli::story_csv;
use super::service::{p, Service};
use super::support;

/// The story's first and last bar (2024-01-01T00:00Z + 61 h).
const START: &str = "2024-01-01T00:00:00Z";
const END: &str = "2024-01-03T13:00:00Z";

pub(super) async fn post(
    http: &reqwest::Client,
    server: &Server,
    path: &str,
    body: Value,
) -> (u16, Value) {
    server.post_json(http, path, &body).await
}

pub(super) fn request(strategy_id: u64, symbol: &str, extra: Value) -> Value {
    let mut request = json!({"strategy_id": strategy_id, "symbol": symbol, "timeframe": "1h",
        "start_date": START, "end_date": END, "initial_capital": 10000.0, "leverage": 10,
        "commission": 0.0006,
        "config": {"params": {"fast_period": 2, "slow_period": 5}}});
    if let Value::Object(extra) = extra {
        for (k, v) in extra {
            request[k] = v;
        }
    }
    request
}

fn assert_refused(status: u16, body: &Value, field: &str) {
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "validation_error", "{body}");
    assert_eq!(body["error"]["field"], field, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perpetual_create_and_run_matches_the_local_cli() {
    let svc = Service::start("perp_api").await;
    let server = Server::start(&svc);
    let _worker = svc.worker("w1", 2, &[]);
    let http = support::http_client();
    server.wait_healthy(&http).await;

    let (status, strategy) = upload(&http, &server, "ema-crossover").await;
    assert_eq!(status, 201, "{strategy}");
    let strategy_id = strategy["strategy_id"].as_u64().unwrap();

    // The 62 bars, for a symbol with no instrument stored (the
    // BTCUSDT default) and one whose contract allows 5x at most.
    let csv_path = story_csv(&svc.dir);
    let csv = std::fs::read(&csv_path).unwrap();
    for symbol in ["BTCUSDT", "ETHUSDT"] {
        let r = http
            .post(server.url(&format!("/api/v1/candles/{symbol}/1h")))
            .bearer_auth(TOKEN)
            .header("content-type", "text/csv")
            .body(csv.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    svc.store
        .put_instrument(
            "ETHUSDT",
            &Instrument {
                symbol: Some("ETHUSDT".into()),
                tick_size: 0.01,
                qty_step: 0.01,
                min_qty: 0.01,
                max_leverage: 5.0,
                maker_fee: 0.0002,
                taker_fee: 0.00055,
                risk_tiers: vec![RiskTier {
                    up_to_value: 1e9,
                    mmr: 0.01,
                    mm_deduction: 0.0,
                }],
            },
        )
        .await
        .unwrap();

    // Refused before anything is queued, naming the field.
    let path = "/api/v1/queue/backtest/create-and-run";
    let perp = json!({"market": "linear_perpetual"});
    let (status, body) = post(
        &http,
        &server,
        path,
        request(
            strategy_id,
            "BTCUSDT",
            json!({"market": "linear_perpetual", "leverage": 200}),
        ),
    )
    .await;
    assert_refused(status, &body, "leverage");
    // Within the engine's 125 but above the default instrument's 100.
    let (status, body) = post(
        &http,
        &server,
        path,
        request(
            strategy_id,
            "BTCUSDT",
            json!({"market": "linear_perpetual", "leverage": 110}),
        ),
    )
    .await;
    assert_refused(status, &body, "leverage");
    // The stored instrument's cap, not the default's.
    let (status, body) = post(&http, &server, path, request(strategy_id, "ETHUSDT", perp)).await;
    assert_refused(status, &body, "leverage");
    let (status, body) = post(
        &http,
        &server,
        path,
        request(strategy_id, "BTCUSDT", json!({"funding_rate": 0.0001})),
    )
    .await;
    assert_refused(status, &body, "funding_rate");
    let (status, body) = post(
        &http,
        &server,
        path,
        request(
            strategy_id,
            "BTCUSDT",
            json!({"market": "spot", "leverage": 1, "funding_rate": 0.0001}),
        ),
    )
    .await;
    assert_refused(status, &body, "funding_rate");
    let counters = svc.queue.counters().await.unwrap();
    assert_eq!(
        counters.tasks_submitted, 0,
        "nothing was queued: {counters:?}"
    );

    // The 10x long through the 15 % drop, with a constant funding rate.
    let (backtest_id, backtest) = perpetual_run(&http, &server, strategy_id, "BTCUSDT").await;
    let first_id = backtest_id;
    let report = &backtest["report"];
    assert_eq!(report["market"], "linear_perpetual", "{report}");
    assert_eq!(report["liquidations"], 1, "{report}");
    assert_eq!(report["funding_source"], "constant", "{report}");
    assert_eq!(report["trades"][0]["exit_reason"], "liquidation");

    // The stored definition keeps the new fields.
    let record = svc.store.get_backtest(backtest_id).await.unwrap().unwrap();
    assert_eq!(
        record.definition.market,
        stratbox_engine::Market::LinearPerpetual
    );
    assert_eq!(record.definition.funding_rate, Some(0.0001));

    // The same data and flags through `stratbox backtest --json`.
    let local = local_cli(&svc, &record, &csv_path, &["--funding-rate", "0.0001"]);
    assert_eq!(record.report.as_deref(), Some(local.as_str()));
    let local: Value = serde_json::from_str(&local).unwrap();
    assert_eq!(*report, local);

    // A symbol with its instrument, funding history and mark series
    // stored (as `stratbox data fetch bybit` leaves them): the worker
    // uses all three, as the CLI does given the same files.
    let story = stratbox_engine::candles::parse_csv(&String::from_utf8(csv).unwrap()).unwrap();
    let spec = Instrument {
        symbol: Some("SOLUSDT".into()),
        tick_size: 0.01,
        qty_step: 0.01,
        min_qty: 0.01,
        max_leverage: 25.0,
        maker_fee: 0.0001,
        taker_fee: 0.0007,
        risk_tiers: vec![RiskTier {
            up_to_value: 1e9,
            mmr: 0.01,
            mm_deduction: 0.0,
        }],
    };
    let funding: Vec<(i64, f64)> = (0..8)
        .map(|k| (1_704_067_200 + 28_800 * k, 0.001))
        .collect();
    svc.store
        .import_candles("SOLUSDT", 3_600, &story)
        .await
        .unwrap();
    svc.store
        .import_mark("SOLUSDT", 3_600, &story)
        .await
        .unwrap();
    svc.store.import_funding("SOLUSDT", &funding).await.unwrap();
    svc.store.put_instrument("SOLUSDT", &spec).await.unwrap();
    let (backtest_id, backtest) = perpetual_run(&http, &server, strategy_id, "SOLUSDT").await;
    let report = &backtest["report"];
    assert_eq!(report["market"], "linear_perpetual", "{report}");
    assert_eq!(report["funding_source"], "history", "{report}");
    let record = svc.store.get_backtest(backtest_id).await.unwrap().unwrap();
    let instrument_path = svc.dir.join("sol-instrument.json");
    std::fs::write(&instrument_path, serde_json::to_string(&spec).unwrap()).unwrap();
    let funding_path = svc.dir.join("sol-funding.csv");
    let mut text = String::from("ts,rate\n");
    for (ts, rate) in &funding {
        text.push_str(&format!("{ts},{rate}\n"));
    }
    std::fs::write(&funding_path, text).unwrap();
    let local = local_cli(
        &svc,
        &record,
        &csv_path,
        &[
            "--funding",
            p(&funding_path),
            "--mark",
            p(&csv_path),
            "--instrument",
            p(&instrument_path),
        ],
    );
    assert_eq!(record.report.as_deref(), Some(local.as_str()));
    // The stored contract's fees, not the default's.
    let default_run: Value = serde_json::from_str(
        &svc.store
            .get_backtest(first_id)
            .await
            .unwrap()
            .unwrap()
            .report
            .unwrap(),
    )
    .unwrap();
    assert_ne!(report["fees_taker"], default_run["fees_taker"], "{report}");
}

/// A 10x perpetual create-and-run of `symbol` with a constant funding
/// rate, once completed: its id and `GET /api/v1/backtests/{id}`.
async fn perpetual_run(
    http: &reqwest::Client,
    server: &Server,
    strategy_id: u64,
    symbol: &str,
) -> (u64, Value) {
    let request = request(
        strategy_id,
        symbol,
        json!({"market": "linear_perpetual", "funding_rate": 0.0001}),
    );
    let (status, created) = post(
        http,
        server,
        "/api/v1/queue/backtest/create-and-run",
        request,
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let backtest_id = created["backtest_id"].as_u64().unwrap();
    (backtest_id, completed(http, server, backtest_id).await)
}

/// The backtest once completed, as `GET /api/v1/backtests/{id}` gives it.
pub(super) async fn completed(http: &reqwest::Client, server: &Server, backtest_id: u64) -> Value {
    server
        .wait_completed(http, &format!("/api/v1/backtests/{backtest_id}"))
        .await
}

/// `stratbox backtest --market linear_perpetual --json` of the record's
/// account and params over `candles`, with the perpetual flags `extra`.
pub(super) fn local_cli(
    svc: &Service,
    record: &stratbox_store::BacktestRecord,
    candles: &std::path::Path,
    extra: &[&str],
) -> String {
    let plugin = support::plugin("ema-crossover");
    let mut args: Vec<String> = [
        "backtest",
        "--plugin",
        p(&plugin),
        "--candles",
        p(candles),
        "--capital",
        "10000",
        "--commission",
        "0.0006",
        "--leverage",
        "10",
        "--market",
        "linear_perpetual",
        "--json",
    ]
    .iter()
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
    for (name, value) in &record.definition.params {
        args.push("--param".into());
        args.push(format!("{name}={value}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = support::stratbox(&svc.dir, &args);
    assert!(out.status.success(), "{}", support::stderr(&out));
    support::stdout(&out).trim().to_string()
}
