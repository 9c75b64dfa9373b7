//! Several symbols in one backtest through the HTTP API: `stratbox serve`
//! and a worker, real processes, give for a 20-symbol, one-year hourly
//! momentum rotation the report `stratbox backtest --symbol ... --json`
//! prints for the same files; bad universes are refused before anything
//! is queued, naming the symbol.

use serde_json::{json, Value};

use super::api::{upload, Server};
use super::service::{p, Service};
use super::support;

const CREATE: &str = "/api/v1/queue/backtest/create-and-run";

/// 20 symbols of a year of hourly bars (seeded), as CSV files.
fn universe_csvs(dir: &std::path::Path, symbols: usize) -> Vec<(String, std::path::PathBuf)> {
    (0..symbols)
        .map(|k| {
            let (path, _) = support::candles_csv(dir, 8_760, 500 + k as u64, 3_600);
            (format!("S{k:02}USDT"), path)
        })
        .collect()
}

/// A service with the momentum rotation uploaded and `symbols` symbols'
/// year of hourly candles imported; a worker unless `worker` is false.
struct Setup {
    svc: Service,
    server: Server,
    _worker: Option<super::service::WorkerProc>,
    http: reqwest::Client,
    strategy: Value,
    csvs: Vec<(String, std::path::PathBuf)>,
}

/// Bind `_worker` where it is destructured: a field left to `..` is
/// dropped at once, and the worker with it.
async fn setup(test: &str, symbols: usize, worker: bool) -> Setup {
    let svc = Service::start(test).await;
    let server = Server::start(&svc);
    let worker = worker.then(|| svc.worker("w1", 2, &[]));
    let http = support::http_client();
    server.wait_healthy(&http).await;
    let (status, strategy) = upload(&http, &server, "momentum-rotation").await;
    assert_eq!(status, 201, "{strategy}");
    let csvs = universe_csvs(&svc.dir, symbols);
    for (symbol, path) in &csvs {
        server.import_candles(&http, symbol, "1h", path).await;
    }
    Setup {
        svc,
        server,
        _worker: worker,
        http,
        strategy,
        csvs,
    }
}

/// `stratbox backtest --json` of the momentum rotation over `csvs`.
fn local_backtest(
    svc: &Service,
    csvs: &[(String, std::path::PathBuf)],
    params: &[(&str, i64)],
    extra: &[&str],
) -> String {
    let plugin = support::plugin("momentum-rotation");
    let mut args: Vec<String> = ["backtest", "--plugin", p(&plugin), "--json"]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    for (symbol, path) in csvs {
        args.push("--symbol".into());
        args.push(format!("{symbol}={}", p(path)));
    }
    for (name, value) in params {
        args.push("--param".into());
        args.push(format!("{name}={value}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = support::stratbox(&svc.dir, &args);
    assert!(out.status.success(), "{}", support::stderr(&out));
    support::stdout(&out).trim_end().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_twenty_symbol_rotation_through_the_queue_equals_the_local_cli() {
    let Setup {
        svc,
        server,
        http,
        strategy,
        csvs,
        _worker,
    } = setup("portfolio", 20, true).await;
    let strategy_id = strategy["strategy_id"].as_u64().unwrap();
    let symbols: Vec<&str> = csvs.iter().map(|(s, _)| s.as_str()).collect();
    let request = json!({"strategy_id": strategy_id, "symbols": symbols, "timeframe": "1h",
        "start_date": "2024-01-01T00:00:00Z", "end_date": "2025-01-01T00:00:00Z",
        "config": {"params": {"lookback": 48, "rebalance": 24, "top_k": 3}}});
    let (status, body) = server.post_json(&http, CREATE, &request).await;
    assert_eq!(status, 200, "{body}");
    let backtest_id = body["backtest_id"].as_u64().unwrap();
    let backtest = server
        .wait_completed(&http, &format!("/api/v1/backtests/{backtest_id}"))
        .await;
    let report = &backtest["report"];
    let per_symbol = report["symbols"].as_array().unwrap();
    assert_eq!(per_symbol.len(), 20, "{report}");
    assert_eq!(per_symbol[0]["symbol"], "S00USDT");
    assert_eq!(report["bars"], 8_760);
    assert!(report["num_trades"].as_u64().unwrap() > 20, "it rotates");
    let traded: std::collections::BTreeSet<&str> = report["trades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["symbol"].as_str().unwrap())
        .collect();
    assert!(traded.len() > 3, "several symbols traded: {traded:?}");

    let record = svc.store.get_backtest(backtest_id).await.unwrap().unwrap();
    assert_eq!(record.definition.symbols, symbols);
    let local = local_backtest(
        &svc,
        &csvs,
        &[("lookback", 48), ("rebalance", 24), ("top_k", 3)],
        &[],
    );
    assert_eq!(record.report.as_deref(), Some(local.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_universes_are_refused_naming_the_symbol_and_nothing_is_queued() {
    let Setup {
        svc,
        server,
        http,
        strategy: rotation,
        ..
    } = setup("portfolio_bad", 2, false).await;
    let (_, ema) = upload(&http, &server, "ema-crossover").await;
    let request = |strategy: &Value, extra: Value| {
        let mut r = json!({"strategy_id": strategy["strategy_id"], "timeframe": "1h",
            "start_date": "2024-01-01T00:00:00Z", "end_date": "2025-01-01T00:00:00Z"});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        r
    };
    // A symbol with no candles: 404 naming it.
    let (status, body) = server
        .post_json(
            &http,
            CREATE,
            &request(&rotation, json!({"symbols": ["S00USDT", "NOPEUSDT"]})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("NOPEUSDT"),
        "{body}"
    );
    // A symbol whose candles end before the range: 422 naming it.
    let (status, body) = server
        .post_json(
            &http,
            CREATE,
            &request(
                &rotation,
                json!({"symbols": ["S00USDT", "S01USDT"], "start_date": "2026-01-01T00:00:00Z",
                       "end_date": "2026-02-01T00:00:00Z"}),
            ),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "symbols", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("S00USDT"),
        "{body}"
    );
    // A one-symbol strategy given several.
    let (status, body) = server
        .post_json(
            &http,
            CREATE,
            &request(&ema, json!({"symbols": ["S00USDT", "S01USDT"]})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "symbols", "{body}");
    // Both `symbol` and `symbols`, or neither.
    let (status, body) = server
        .post_json(
            &http,
            CREATE,
            &request(
                &rotation,
                json!({"symbol": "S00USDT", "symbols": ["S01USDT"]}),
            ),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("symbols")),
        "{body}"
    );
    // Neither: a missing field, a 400 as it always was.
    let (status, body) = server
        .post_json(&http, CREATE, &request(&rotation, json!({})))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`symbol`"),
        "{body}"
    );
    let counters = svc.queue.counters().await.unwrap();
    assert_eq!(
        counters.tasks_submitted, 0,
        "nothing was queued: {counters:?}"
    );
}

/// An optimization over several symbols: its chunks run the portfolio on
/// every worker, and each row is the report of the same backtest through
/// the API; its table, with a hold-out too, is `stratbox optimize`'s; a
/// walk-forward over several symbols is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portfolio_optimization_ranks_rows_that_are_its_backtests() {
    let Setup {
        svc,
        server,
        http,
        strategy,
        csvs,
        _worker,
    } = setup("portfolio_opt", 4, true).await;
    let symbols: Vec<&str> = csvs.iter().map(|(s, _)| s.as_str()).collect();
    let backtest = |params: &Value| {
        json!({"strategy_id": strategy["strategy_id"], "symbols": symbols, "timeframe": "1h",
            "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-07-01T00:00:00Z",
            "config": {"params": params}})
    };
    let mut sweep = backtest(&json!({"rebalance": 12}));
    sweep["search_space"] = json!({"lookback": [24, 96], "top_k": [1, 2]});
    let path = "/api/v1/queue/optimization/create-and-run";
    let mut walked = sweep.clone();
    walked["walk_forward"] = json!({"train": 1000, "test": 500});
    let (status, body) = server.post_json(&http, path, &walked).await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("walk_forward")),
        "{body}"
    );

    let (status, created) = server.post_json(&http, path, &sweep).await;
    assert_eq!(status, 200, "{created}");
    let id = created["optimization_id"].as_u64().unwrap();
    let done = server
        .wait_completed(&http, &format!("/api/v1/optimizations/{id}?top=4"))
        .await;
    assert_eq!(done["combinations"], 4, "{done}");
    let top = done["top"].as_array().unwrap();
    assert_eq!(top.len(), 4, "{done}");
    let mut equities = std::collections::BTreeSet::new();
    for row in top {
        let (status, created) = server
            .post_json(&http, CREATE, &backtest(&row["params"]))
            .await;
        assert_eq!(status, 200, "{created}");
        let one = server
            .wait_completed(
                &http,
                &format!("/api/v1/backtests/{}", created["backtest_id"]),
            )
            .await;
        let report = &one["report"];
        assert!(report["num_trades"].as_u64().unwrap() > 0, "{report}");
        for (metric, value) in row["metrics"].as_object().unwrap() {
            assert_eq!(value.as_f64(), report[metric].as_f64(), "{metric} of {row}");
        }
        equities.insert(report["final_equity"].to_string());
    }
    assert!(
        equities.len() > 1,
        "the params change the result: {equities:?}"
    );

    // The table is `stratbox optimize`'s over the same bars.
    let table = http
        .get(server.url(&format!("/api/v1/optimizations/{id}/table.csv")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let local_csv = svc.dir.join("local.csv");
    let plugin = support::plugin("momentum-rotation");
    let mut args: Vec<String> = [
        "optimize",
        "--plugin",
        p(&plugin),
        "--values",
        "lookback=24,96",
        "--values",
        "top_k=1,2",
        "--param",
        "rebalance=12",
        "--csv",
        p(&local_csv),
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (symbol, path) in &csvs {
        // The API's range, 2024-01-01 to 2024-07-01 00:00 inclusive: the
        // header and the first 4,369 hourly bars of the year's file.
        let text = std::fs::read_to_string(path).unwrap();
        let half: Vec<&str> = text.lines().take(1 + 4_369).collect();
        let half_path = svc.dir.join(format!("{symbol}-half.csv"));
        std::fs::write(&half_path, half.join("\n") + "\n").unwrap();
        args.push("--symbol".into());
        args.push(format!("{symbol}={}", p(&half_path)));
    }
    let run_local = |extra: &[&str]| {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        let out = support::stratbox(&svc.dir, &all);
        assert!(out.status.success(), "{}", support::stderr(&out));
        std::fs::read_to_string(&local_csv).unwrap()
    };
    assert_eq!(table, run_local(&[]));
    assert_eq!(table.lines().count(), 5);

    // With a hold-out: every symbol split at the same time; the table,
    // out-of-sample metrics included, is the CLI's.
    let mut held_out = sweep.clone();
    held_out["holdout"] = json!({"split": 0.25});
    let (status, created) = server.post_json(&http, path, &held_out).await;
    assert_eq!(status, 200, "{created}");
    let id = created["optimization_id"].as_u64().unwrap();
    let done = server
        .wait_completed(&http, &format!("/api/v1/optimizations/{id}?top=4"))
        .await;
    assert!(done["top"][0]["oos"].is_object(), "{done}");
    let table = http
        .get(server.url(&format!("/api/v1/optimizations/{id}/table.csv")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(table, run_local(&["--holdout", "0.25"]));
}

/// The dashboard shows a portfolio report: one equity curve, a row per
/// symbol with its figures as the report has them, and a symbol on every
/// trade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_each_symbol_of_a_portfolio_report() {
    use super::browser::Browser;
    use super::dashboard::{sign_in, text_of, trades_table, wait_backtest_charts};
    let Setup {
        svc,
        server,
        http,
        strategy,
        csvs,
        _worker,
    } = setup("portfolio_dashboard", 3, true).await;
    let symbols: Vec<&str> = csvs.iter().map(|(s, _)| s.as_str()).collect();
    let request = json!({"strategy_id": strategy["strategy_id"], "symbols": symbols,
        "timeframe": "1h", "start_date": "2024-01-01T00:00:00Z",
        "end_date": "2024-03-01T00:00:00Z",
        "config": {"params": {"lookback": 24, "rebalance": 24, "top_k": 1}}});
    let (status, created) = server.post_json(&http, CREATE, &request).await;
    assert_eq!(status, 200, "{created}");
    let id = created["backtest_id"].as_u64().unwrap();
    let done = server
        .wait_completed(&http, &format!("/api/v1/backtests/{id}"))
        .await;
    let report = &done["report"];
    assert!(report["num_trades"].as_u64().unwrap() > 3, "{report}");

    let browser = Browser::start(&svc.dir.join("chromium")).await;
    let page = server.url("/dashboard/");
    sign_in(&browser, &page).await;
    browser.goto(&format!("{page}?p#/backtests/{id}")).await;
    wait_backtest_charts(&browser).await;
    assert_eq!(text_of(&browser, "#symbols h2").await, "Symbols (3)");
    let rows = browser
        .eval(
            "return [...document.querySelectorAll('#symbols tbody tr')]
                 .map(r => [r.dataset.symbol, ...[...r.cells].map(c => c.textContent)])",
            json!([]),
        )
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (row, summary) in rows.iter().zip(report["symbols"].as_array().unwrap()) {
        assert_eq!(row[0], summary["symbol"]);
        assert_eq!(row[1], summary["symbol"]);
        assert_eq!(row[2], summary["bars"].to_string());
        assert_eq!(row[3], summary["num_trades"].to_string());
    }
    let (headers, trades) = trades_table(&browser).await;
    assert_eq!(headers[1], "symbol");
    assert_eq!(trades.len() as u64, report["num_trades"].as_u64().unwrap());
    for ((cells, _), trade) in trades.iter().zip(report["trades"].as_array().unwrap()) {
        assert_eq!(cells[1], trade["symbol"].as_str().unwrap());
    }
    for (level, message) in browser.console().await {
        assert!(
            level != "SEVERE" || message.contains("401"),
            "console {level}: {message}"
        );
    }
    browser.close().await;
}

/// A perpetual portfolio through the API (each symbol with no stored
/// contract or funding: the default instrument and the request's constant
/// rate) equals `stratbox backtest --market linear_perpetual` over the
/// same files: one wallet, funding per symbol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_perpetual_portfolio_through_the_queue_equals_the_local_cli() {
    let Setup {
        svc,
        server,
        http,
        strategy,
        csvs,
        _worker,
    } = setup("portfolio_perp", 3, true).await;
    let symbols: Vec<&str> = csvs.iter().map(|(s, _)| s.as_str()).collect();
    let request = json!({"strategy_id": strategy["strategy_id"], "symbols": symbols,
        "timeframe": "1h", "start_date": "2024-01-01T00:00:00Z",
        "end_date": "2025-01-01T00:00:00Z", "leverage": 5, "market": "linear_perpetual",
        "funding_rate": 0.0001,
        "config": {"params": {"lookback": 48, "rebalance": 24, "top_k": 2}}});
    let (status, created) = server.post_json(&http, CREATE, &request).await;
    assert_eq!(status, 200, "{created}");
    let id = created["backtest_id"].as_u64().unwrap();
    let done = server
        .wait_completed(&http, &format!("/api/v1/backtests/{id}"))
        .await;
    let report = &done["report"];
    assert_eq!(report["market"], "linear_perpetual", "{report}");
    assert_eq!(report["funding_source"], "constant", "{report}");
    assert!(report["funding_paid"].as_f64().unwrap() != 0.0, "{report}");
    assert!(report["num_trades"].as_u64().unwrap() > 10, "{report}");
    for summary in report["symbols"].as_array().unwrap() {
        assert!(summary["funding_paid"].is_number(), "{summary}");
        assert!(summary["liquidations"].is_number(), "{summary}");
    }

    let record = svc.store.get_backtest(id).await.unwrap().unwrap();
    let local = local_backtest(
        &svc,
        &csvs,
        &[("lookback", 48), ("rebalance", 24), ("top_k", 2)],
        &[
            "--leverage",
            "5",
            "--market",
            "linear_perpetual",
            "--funding-rate",
            "0.0001",
        ],
    );
    assert_eq!(record.report.as_deref(), Some(local.as_str()));
}
