//! The dashboard in a real headless Chromium, against a real `serve` with a
//! token, a real worker and a private Redis. Screenshots of each page type
//! and the measured figures go to `target/dashboard/` in the workspace.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stratbox_queue::TaskStatus;
use stratbox_service::tasks::submit_backtest;

use super::api::{upload, Server, TOKEN};
use super::browser::Browser;
use super::queue_backtest::{definition, hourly};
use super::service::Service;
use super::support;

const HOUR: i64 = 3600;
const START: i64 = 1_704_067_200;
const WAIT: Duration = Duration::from_secs(60);

/// `GET path` with the token (`body` None) or `POST path` with a JSON body.
async fn call(http: &reqwest::Client, server: &Server, path: &str, body: Option<&Value>) -> Value {
    let request = match body {
        None => http.get(server.url(path)),
        Some(body) => http.post(server.url(path)).json(body),
    };
    let reply = request.bearer_auth(TOKEN).send().await.unwrap();
    reply.json().await.unwrap()
}

async fn wait_done(http: &reqwest::Client, server: &Server, path: &str) -> Value {
    let started = Instant::now();
    loop {
        let body = call(http, server, path, None).await;
        match body["status"].as_str().unwrap_or("") {
            "completed" => return body,
            "queued" | "running" => {}
            other => panic!("{path} ended {other}: {body}"),
        }
        assert!(started.elapsed() < WAIT, "{path} not done: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Pixels of `rgb` (within a small tolerance) on the canvas under `css`.
const COUNT_PIXELS: &str = "
    const canvas = document.querySelector(arguments[0]);
    if (!canvas) return -1;
    const [r, g, b] = arguments[1];
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let n = 0;
    for (let i = 0; i < data.length; i += 4) {
        if (data[i + 3] > 200 && Math.abs(data[i] - r) < 40 && Math.abs(data[i + 1] - g) < 40
            && Math.abs(data[i + 2] - b) < 40) n++;
    }
    return n;";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_charts_and_requeues_from_the_dlq_in_chromium() {
    let svc = Service::start("dashboard").await;
    let server = Server::start(&svc);
    let http = crate::support::http_client();
    server.wait_healthy(&http).await;
    svc.store
        .import_candles("BTCUSDT", HOUR, &hourly(2_000, 11))
        .await
        .unwrap();

    // A dead letter first: its plugin disappears before any worker runs.
    let sha = svc.put_plugin("ema-crossover").await;
    let (_, dead_task) = submit_backtest(
        &svc.store,
        &svc.queue,
        &definition(&sha, "BTCUSDT", START, START + 1_999 * HOUR),
        5,
    )
    .await
    .unwrap();
    let record = svc.store.plugin_record_by_sha(&sha).await.unwrap().unwrap();
    assert!(svc.store.delete_plugin(record.strategy_id).await.unwrap());
    let _worker = svc.worker("w1", 2, &[]);
    let failed = svc.wait_final(&dead_task, WAIT).await;
    assert_eq!(failed.status, TaskStatus::Failed);

    // Then a backtest and a 3 x 3 optimization through the API.
    let (status, strategy) = upload(&http, &server, "ema-crossover").await;
    assert!(matches!(status, 200 | 201), "{strategy}");
    let strategy_id = strategy["strategy_id"].as_u64().unwrap();
    let market = json!({"strategy_id": strategy_id, "symbol": "BTCUSDT", "timeframe": "1h",
        "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-03-20T00:00:00Z",
        "config": {"params": {"fast_period": 8, "slow_period": 21}}});
    let created = call(
        &http,
        &server,
        "/api/v1/queue/backtest/create-and-run",
        Some(&market),
    )
    .await;
    let backtest_id = created["backtest_id"].as_u64().unwrap();
    let mut sweep = market.clone();
    sweep["config"] = json!({"params": {}});
    sweep["search_space"] = json!({"fast_period": [5, 10, 15], "slow_period": [20, 30, 40]});
    sweep["objective"] = json!({"metric": "total_return_pct"});
    let created = call(
        &http,
        &server,
        "/api/v1/queue/optimization/create-and-run",
        Some(&sweep),
    )
    .await;
    let optimization_id = created["optimization_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{created}"));
    // A daily schedule, to be paused from the page.
    let created = call(
        &http,
        &server,
        "/api/v1/schedules",
        Some(&json!({"name": "nightly", "cron": "0 3 * * *", "backtest": market})),
    )
    .await;
    let schedule_id = created["schedule_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{created}"));
    let backtest = wait_done(&http, &server, &format!("/api/v1/backtests/{backtest_id}")).await;
    let trades = backtest["report"]["num_trades"].as_u64().unwrap();
    assert!(trades > 0, "the chart's trade markers need trades");
    wait_done(
        &http,
        &server,
        &format!("/api/v1/optimizations/{optimization_id}"),
    )
    .await;

    // The data is closed without the token; the page shell is not.
    for path in [
        "/dashboard/api/queue/state",
        "/dashboard/api/queue/dlq",
        "/dashboard/api/backtests",
        &format!("/dashboard/api/backtests/{backtest_id}"),
        &format!("/dashboard/api/optimizations/{optimization_id}"),
    ] {
        let r = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without the token");
        let r = http
            .get(server.url(path))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong token");
    }
    let requeue = http
        .post(server.url("/dashboard/api/queue/dlq/requeue"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(requeue.status(), 401);
    let shell = http.get(server.url("/dashboard/")).send().await.unwrap();
    assert_eq!(shell.status(), 200);
    let policy = shell.headers()["content-security-policy"].to_str().unwrap();
    assert!(policy.contains("connect-src 'self'"), "{policy}");

    let shots = support::workspace().join("target/dashboard");
    let browser = Browser::start(&svc.dir.join("chromium")).await;
    let page = server.url("/dashboard/");

    // The page asks for the token and keeps it for the tab.
    browser.goto(&page).await;
    browser
        .wait_for(
            "the token form",
            "return window.stratboxDashboard && window.stratboxDashboard.view === 'login'",
            WAIT,
        )
        .await;
    browser.type_into("#token-input", TOKEN).await;
    browser.click("#token-save").await;
    browser
        .wait_for(
            "the DLQ entry's requeue button",
            &format!("return document.querySelector('button.requeue[data-task-id=\"{dead_task}\"]') !== null"),
            WAIT,
        )
        .await;
    browser
        .wait_for(
            "the queue charts",
            "return document.querySelectorAll('.chart .uplot[data-drawn]').length >= 2",
            WAIT,
        )
        .await;
    browser.resize(1400, 2200).await;
    browser.screenshot(&shots.join("overview.png")).await;

    // Pause the schedule by its button; the API sees it paused.
    let toggle = format!("button.schedule-toggle[data-schedule-id=\"{schedule_id}\"]");
    browser.click(&toggle).await;
    let started = Instant::now();
    loop {
        let path = format!("/api/v1/schedules/{schedule_id}");
        let schedule = call(&http, &server, &path, None).await;
        if schedule["paused"] == json!(true) {
            break;
        }
        assert!(started.elapsed() < WAIT, "not paused: {schedule}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    browser
        .wait_for(
            "the Resume button",
            &format!("const b = document.querySelector('{toggle}'); return b && b.textContent === 'Resume'"),
            WAIT,
        )
        .await;

    // Requeue by clicking; the plugin is back, so the task completes.
    svc.put_plugin("ema-crossover").await;
    browser
        .click(&format!("button.requeue[data-task-id=\"{dead_task}\"]"))
        .await;
    let done = svc
        .wait_status(&dead_task, TaskStatus::Completed, WAIT)
        .await;
    assert_eq!(
        done.attempts, 1,
        "a requeue starts the attempts afresh: {done:?}"
    );
    assert_eq!(svc.queue.stats().await.unwrap().dlq, 0);
    browser
        .wait_for(
            "the DLQ to show empty",
            "const c = document.querySelector('#dlq-count .value'); return c && c.textContent === '0'",
            WAIT,
        )
        .await;

    // The backtest page, loaded fresh so the first chart is timed.
    browser
        .goto(&format!("{page}?fresh#/backtests/{backtest_id}"))
        .await;
    browser
        .wait_for(
            "the equity and drawdown charts",
            "return document.querySelectorAll('#equity-chart .uplot[data-drawn], #drawdown-chart .uplot[data-drawn]').length === 2",
            WAIT,
        )
        .await;
    let first_chart_ms = browser
        .eval("return window.stratboxDashboard.firstChartMs", json!([]))
        .await;
    let equity_line = browser
        .eval(COUNT_PIXELS, json!(["#equity-chart canvas", [37, 99, 235]]))
        .await;
    assert!(
        equity_line.as_i64().unwrap() > 300,
        "equity line pixels: {equity_line}"
    );
    let long_entries = browser
        .eval(COUNT_PIXELS, json!(["#equity-chart canvas", [21, 128, 61]]))
        .await;
    assert!(
        long_entries.as_i64().unwrap() > 20,
        "trade marker pixels: {long_entries}"
    );
    let drawdown_fill = browser
        .eval(
            COUNT_PIXELS,
            json!(["#drawdown-chart canvas", [185, 28, 28]]),
        )
        .await;
    assert!(
        drawdown_fill.as_i64().unwrap() > 100,
        "drawdown pixels: {drawdown_fill}"
    );
    let rows = browser
        .eval(
            "return document.querySelectorAll('#trades tbody tr').length",
            json!([]),
        )
        .await;
    assert_eq!(rows.as_u64(), Some(trades.min(500)));
    let assets = browser
        .eval(
            "return [...document.scripts].map(s => s.src)
                .concat([...document.querySelectorAll('link[rel=stylesheet]')].map(l => l.href))",
            json!([]),
        )
        .await;
    let (mut weight, mut weight_gzip) = (0, 0);
    for url in assets.as_array().unwrap() {
        let url = url.as_str().unwrap();
        let plain = http.get(url).send().await.unwrap();
        assert_eq!(plain.status(), 200, "{url}");
        weight += plain.bytes().await.unwrap().len();
        // As a browser fetches it (this client does not decode).
        let gzip = http
            .get(url)
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert_eq!(gzip.headers()["content-encoding"], "gzip", "{url}");
        weight_gzip += gzip.bytes().await.unwrap().len();
    }
    browser.resize(1400, 1600).await;
    browser.screenshot(&shots.join("backtest.png")).await;

    // The optimization page: ranked table and a 3 x 3 heatmap.
    browser
        .goto(&format!("{page}#/optimizations/{optimization_id}"))
        .await;
    browser
        .wait_for(
            "the heatmap",
            "const c = document.querySelector('#heatmap[data-drawn]'); return c && c.dataset.cells",
            WAIT,
        )
        .await;
    let cells = browser
        .eval(
            "return document.querySelector('#heatmap').dataset.cells",
            json!([]),
        )
        .await;
    assert_eq!(cells, json!("9"));
    let ranked = browser
        .eval(
            "return document.querySelectorAll('#ranking tbody tr').length",
            json!([]),
        )
        .await;
    assert_eq!(ranked.as_u64(), Some(9));
    browser.screenshot(&shots.join("optimization.png")).await;

    // Nothing left loopback; no script error and no CSP refusal.
    let origin = format!("{}/", server.base);
    let requests = browser.requests().await;
    // Chromium's own pages (its first tab) are not web documents.
    let urls: Vec<&String> = requests
        .iter()
        .filter(|(document, _)| document.starts_with("http"))
        .map(|(_, url)| url)
        .collect();
    assert!(urls.len() >= 10, "{requests:?}");
    for url in &urls {
        assert!(
            url.starts_with(&origin) || url.starts_with("data:") || url.starts_with("blob:"),
            "a request left loopback: {url}"
        );
    }
    for (level, message) in browser.console().await {
        let expected_401 = message.contains("401");
        assert!(
            level != "SEVERE" || expected_401,
            "console {level}: {message}"
        );
        assert!(
            !message.contains("Content Security Policy"),
            "CSP refusal: {message}"
        );
    }
    browser.close().await;

    let figures = json!({
        "first_chart_ms": first_chart_ms,
        "script_and_style_bytes": weight,
        "script_and_style_bytes_gzip": weight_gzip,
        "requests": urls.len(),
    });
    std::fs::write(shots.join("figures.json"), figures.to_string()).unwrap();
    eprintln!("dashboard figures: {figures}");
}

/// 64 hourly bars from 2024-01-01T00:00Z for EMA 2/5 at 10x: a bullish
/// cross at bar 10 (long from bar 11's open, 101), held flat through the
/// funding times of bars 16, 24 and 32, liquidated by a 15 % fall on bar
/// 34 (10:00 on 2 January); then bullish crosses at bars 45 and 57 whose
/// all-in orders the emptied wallet cannot size (`below_min_qty`).
fn perp_story_csv() -> String {
    let mut closes: Vec<f64> = (0..10).map(|i| 100.0 - 0.1 * f64::from(i)).collect();
    for (close, bars) in [(101.0, 24), (85.85, 11), (90.0, 6), (80.0, 6), (95.0, 7)] {
        closes.extend(std::iter::repeat_n(close, bars));
    }
    assert_eq!(closes.len(), 64);
    let mut text = String::from("ts,open,high,low,close,volume\n");
    let mut prev = closes[0];
    for (i, &close) in closes.iter().enumerate() {
        let ts = START + HOUR * i as i64;
        let (high, low) = (prev.max(close), prev.min(close));
        text.push_str(&format!("{ts},{prev},{high},{low},{close},1\n"));
        prev = close;
    }
    text
}

/// The report keys only a perpetual run has (per trade: `funding`,
/// `liquidation_price`).
const PERP_KEYS: &[&str] = &[
    "market",
    "liquidations",
    "funding_paid",
    "fees_maker",
    "fees_taker",
    "rejected_orders",
    "funding_source",
];

/// The liquidation markers' colour (app.js `LIQUIDATION`).
const LIQUIDATION_RGB: [u8; 3] = [192, 38, 211];

/// A figure as the page prints it (`1,234.56`).
fn shown(text: &str) -> f64 {
    text.replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text:?}"))
}

pub(super) async fn text_of(browser: &Browser, css: &str) -> String {
    let v = browser
        .eval(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null",
            json!([css]),
        )
        .await;
    if v.is_null() {
        let page = browser
            .eval(
                "return [location.href, document.body.innerText.slice(0, 3000)]",
                json!([]),
            )
            .await;
        panic!(
            "no element {css}; page: {page}; console: {:?}",
            browser.console().await
        );
    }
    v.as_str().unwrap().to_string()
}

/// The trades table: its header cells, and each row's cells and class.
pub(super) async fn trades_table(browser: &Browser) -> (Vec<String>, Vec<(Vec<String>, String)>) {
    let table = browser
        .eval(
            "const t = document.querySelector('#trades');
             return [[...t.querySelectorAll('thead th')].map(c => c.textContent),
                     [...t.querySelectorAll('tbody tr')].map(r =>
                         [[...r.cells].map(c => c.textContent), r.className])];",
            json!([]),
        )
        .await;
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let rows = table[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| (strings(&row[0]), row[1].as_str().unwrap().to_string()))
        .collect();
    (strings(&table[0]), rows)
}

pub(super) async fn wait_backtest_charts(browser: &Browser) {
    browser
        .wait_for(
            "the equity and drawdown charts",
            "return document.querySelectorAll('#equity-chart .uplot[data-drawn], #drawdown-chart .uplot[data-drawn]').length === 2",
            WAIT,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_perpetual_report_and_spot_reports_without_its_fields() {
    let svc = Service::start("dashboard_perp").await;
    let server = Server::start(&svc);
    let _worker = svc.worker("w1", 2, &[]);
    let http = crate::support::http_client();
    server.wait_healthy(&http).await;
    let (status, strategy) = upload(&http, &server, "ema-crossover").await;
    assert!(matches!(status, 200 | 201), "{strategy}");
    let strategy_id = strategy["strategy_id"].as_u64().unwrap();
    let r = http
        .post(server.url("/api/v1/candles/BTCUSDT/1h"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(perp_story_csv())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // The same strategy and bars: spot, and 10x perpetual with funding.
    let spot = json!({"strategy_id": strategy_id, "symbol": "BTCUSDT", "timeframe": "1h",
        "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-01-03T15:00:00Z",
        "initial_capital": 10000.0,
        "config": {"params": {"fast_period": 2, "slow_period": 5}}});
    let mut perp = spot.clone();
    perp["market"] = json!("linear_perpetual");
    perp["leverage"] = json!(10);
    perp["funding_rate"] = json!(0.0001);
    let path = "/api/v1/queue/backtest/create-and-run";
    let created = call(&http, &server, path, Some(&spot)).await;
    let spot_id = created["backtest_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{created}"));
    let created = call(&http, &server, path, Some(&perp)).await;
    let perp_id = created["backtest_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{created}"));
    let spot_report =
        wait_done(&http, &server, &format!("/api/v1/backtests/{spot_id}")).await["report"].clone();
    let report =
        wait_done(&http, &server, &format!("/api/v1/backtests/{perp_id}")).await["report"].clone();
    for key in PERP_KEYS {
        assert!(spot_report.get(key).is_none(), "spot report has {key}");
    }
    assert!(spot_report["num_trades"].as_u64().unwrap() > 0);
    // What the page is checked against: funding, a liquidation, rejections.
    assert_eq!(report["liquidations"], 1, "{report}");
    assert_eq!(report["rejected_orders"], json!({"below_min_qty": 2}));
    assert!(report["funding_paid"].as_f64().unwrap() > 0.0, "{report}");
    let liquidated = &report["trades"][0];
    assert_eq!(liquidated["exit_reason"], "liquidation");
    assert_eq!(liquidated["exit_ts"], START + 34 * HOUR);

    let shots = support::workspace().join("target/dashboard");
    let browser = Browser::start(&svc.dir.join("chromium")).await;
    let page = server.url("/dashboard/");
    sign_in(&browser, &page).await;

    // Spot: the page as before, with none of the perpetual figures.
    browser
        .goto(&format!("{page}?spot#/backtests/{spot_id}"))
        .await;
    wait_backtest_charts(&browser).await;
    let (headers, rows) = trades_table(&browser).await;
    assert_eq!(
        headers,
        [
            "#",
            "side",
            "entry (UTC)",
            "exit (UTC)",
            "qty",
            "entry",
            "exit",
            "pnl",
            "return",
            "fees",
            "fills"
        ]
    );
    assert_eq!(
        rows.len() as u64,
        spot_report["num_trades"].as_u64().unwrap()
    );
    assert!(rows
        .iter()
        .all(|(cells, class)| cells.len() == 11 && class.is_empty()));
    assert_eq!(
        text_of(&browser, ".legend-note").await,
        "▲ long entry  ▼ short entry  ● exit (blue: profit, brown: loss)"
    );
    let next = browser
        .eval(
            "const n = document.querySelector('#report-cards').nextSibling;
             return [n.nodeName, n.textContent]",
            json!([]),
        )
        .await;
    assert_eq!(next, json!(["H2", "Equity and drawdown"]));
    let absent = browser
        .eval(
            "return ['#perp-cards', '#liquidation-tip', '[data-reason]']
                 .filter(css => document.querySelector(css) !== null)
                 .concat(window.stratboxDashboard.liquidationMarkers.map(() => 'marker'))",
            json!([]),
        )
        .await;
    assert_eq!(absent, json!([]), "perpetual parts on a spot report");
    let text = text_of(&browser, "#main").await.to_lowercase();
    for word in [
        "perpetual",
        "funding",
        "liquidat",
        "maker",
        "taker",
        "rejected",
    ] {
        assert!(!text.contains(word), "a spot report shows `{word}`");
    }
    let liquidation_pixels = browser
        .eval(
            COUNT_PIXELS,
            json!(["#equity-chart canvas", LIQUIDATION_RGB]),
        )
        .await;
    assert_eq!(liquidation_pixels, json!(0));

    // Perpetual: every figure as the report has it.
    browser
        .goto(&format!("{page}?perp#/backtests/{perp_id}"))
        .await;
    wait_backtest_charts(&browser).await;
    assert_eq!(
        text_of(&browser, "#perp-market .value").await,
        "linear_perpetual"
    );
    assert_eq!(
        text_of(&browser, "#perp-funding-source .value").await,
        report["funding_source"].as_str().unwrap()
    );
    assert_eq!(
        text_of(&browser, "#perp-liquidations .value").await,
        report["liquidations"].to_string()
    );
    for (id, key) in [
        ("perp-funding-paid", "funding_paid"),
        ("perp-fees-maker", "fees_maker"),
        ("perp-fees-taker", "fees_taker"),
    ] {
        let expected = report[key].as_f64().unwrap();
        let exact = browser
            .eval(
                "return document.getElementById(arguments[0]).dataset.value",
                json!([id]),
            )
            .await;
        assert_eq!(
            exact.as_str().unwrap().parse::<f64>().unwrap(),
            expected,
            "{key}"
        );
        let text = text_of(&browser, &format!("#{id} .value")).await;
        assert!(
            (shown(&text) - expected).abs() <= 0.005,
            "{key}: shows {text}, the report has {expected}"
        );
    }
    let rejected = browser
        .eval(
            "return Object.fromEntries([...document.querySelectorAll('#perp-cards [data-reason]')]
                 .map(c => [c.dataset.reason, Number(c.querySelector('.value').textContent)]))",
            json!([]),
        )
        .await;
    assert_eq!(rejected, report["rejected_orders"]);
    let total: u64 = report["rejected_orders"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(
        text_of(&browser, "#perp-rejected .value").await,
        total.to_string()
    );

    // The trades table gains funding and the liquidation price.
    let (headers, rows) = trades_table(&browser).await;
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    assert_eq!(rows.len(), 1);
    let (cells, class) = &rows[0];
    assert_eq!(cells.len(), headers.len());
    assert_eq!(class, "liquidated");
    assert_eq!(cells[column("fills")], "market → liquidation");
    let funding = liquidated["funding"].as_f64().unwrap();
    assert!((shown(&cells[column("funding")]) - funding).abs() <= 0.005);
    let price = liquidated["liquidation_price"].as_f64().unwrap();
    assert!((shown(&cells[column("liq. price")]) - price).abs() <= 0.00005);

    // One liquidation marker, drawn in its own colour, named on hover.
    assert!(text_of(&browser, ".legend-note")
        .await
        .ends_with("◆ liquidation"));
    let markers = browser
        .eval(
            "return window.stratboxDashboard.liquidationMarkers",
            json!([]),
        )
        .await;
    assert_eq!(markers.as_array().unwrap().len(), 1, "{markers}");
    let liquidation_pixels = browser
        .eval(
            COUNT_PIXELS,
            json!(["#equity-chart canvas", LIQUIDATION_RGB]),
        )
        .await;
    assert!(
        liquidation_pixels.as_i64().unwrap() > 30,
        "liquidation marker pixels: {liquidation_pixels}"
    );
    let at = browser
        .eval(
            "const over = document.querySelector('#equity-chart .u-over');
             over.scrollIntoView({block: 'center'});
             const box = over.getBoundingClientRect();
             const m = window.stratboxDashboard.liquidationMarkers[0];
             // A liquidation at zero equity sits on the plot's bottom edge.
             const top = Math.min(m.top, box.height - 3);
             return [Math.round(box.left + m.left), Math.round(box.top + top)];",
            json!([]),
        )
        .await;
    browser
        .move_mouse(at[0].as_i64().unwrap(), at[1].as_i64().unwrap())
        .await;
    let tip = browser
        .wait_for(
            "the liquidation tooltip",
            "const t = document.querySelector('#liquidation-tip'); return t && !t.hidden && t.textContent",
            WAIT,
        )
        .await;
    let tip = tip.as_str().unwrap();
    assert!(
        tip.starts_with("liquidation · long closed 2024-01-02 10:00:00 UTC"),
        "{tip}"
    );
    browser.resize(1400, 1800).await;
    browser.screenshot(&shots.join("backtest-perp.png")).await;
    for (level, message) in browser.console().await {
        assert!(
            level != "SEVERE" || message.contains("401"),
            "console {level}: {message}"
        );
    }
    browser.close().await;
}

/// A pixel of the first walk-forward band (app.js `BAND_COLORS[0]`).
const BAND_RGB: [u8; 3] = [254, 243, 199];

/// Signs in with the token on a fresh page.
pub(super) async fn sign_in(browser: &Browser, page: &str) {
    browser.goto(page).await;
    browser
        .wait_for(
            "the token form",
            "return window.stratboxDashboard && window.stratboxDashboard.view === 'login'",
            WAIT,
        )
        .await;
    browser.type_into("#token-input", TOKEN).await;
    browser.click("#token-save").await;
    browser
        .wait_for(
            "the overview",
            "return window.stratboxDashboard.view === 'overview' && document.querySelector('#queue-cards .card') !== null",
            WAIT,
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_walk_forward_and_a_bayes_search_as_it_runs() {
    let svc = Service::start("dashboard_wf").await;
    let server = Server::start(&svc);
    // The slow strategy's trials burn more fuel per bar than the default.
    let _worker = svc.worker("w1", 2, &[("STRATBOX_FUEL_PER_BAR", "100000000000")]);
    let http = crate::support::http_client();
    server.wait_healthy(&http).await;
    svc.store
        .import_candles("BTCUSDT", HOUR, &hourly(2_600, 8))
        .await
        .unwrap();
    svc.store
        .import_candles("SLOW", HOUR, &hourly(400, 3))
        .await
        .unwrap();
    let (status, ema) = upload(&http, &server, "ema-crossover").await;
    assert!(matches!(status, 200 | 201), "{ema}");
    let (status, slow) = upload(&http, &server, "hostile/slow").await;
    assert!(matches!(status, 200 | 201), "{slow}");
    let path = "/api/v1/queue/optimization/create-and-run";

    // 3 walk-forward windows (train 1,000 bars, test 600) of 8 combinations.
    let last = stratbox_engine::time::format_rfc3339_secs(START + 2_599 * HOUR);
    let walk = json!({"strategy_id": ema["strategy_id"], "symbol": "BTCUSDT", "timeframe": "1h",
        "start_date": "2024-01-01T00:00:00Z", "end_date": last,
        "config": {"params": {"allow_short": true}},
        "search_space": {"fast_period": {"min": 5, "max": 20, "step": 5}, "slow_period": [30, 60]},
        "objective": {"metric": "total_return_pct"},
        "walk_forward": {"train": 1000, "test": "25d"}});
    let created = call(&http, &server, path, Some(&walk)).await;
    let walk_id = created["optimization_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{created}"));
    let walked = wait_done(&http, &server, &format!("/api/v1/optimizations/{walk_id}")).await;
    let report = &walked["walk_forward"];
    let windows = report["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 3, "{report}");

    // A Bayesian search of 24 trials of about 0.5 s each, in rounds of
    // 8 on 2 slots: several seconds, so the page sees it between rounds.
    let last = stratbox_engine::time::format_rfc3339_secs(START + 399 * HOUR);
    let search = json!({"strategy_id": slow["strategy_id"], "symbol": "SLOW", "timeframe": "1h",
        "start_date": "2024-01-01T00:00:00Z", "end_date": last,
        "config": {"params": {"work": 1_000_000}},
        "search_space": {"period": {"min": 2, "max": 129, "step": 1}},
        "method": "bayes", "trials": 24, "seed": 3});
    let created = call(&http, &server, path, Some(&search)).await;
    let bayes_id = created["optimization_id"]
        .as_u64()
        .unwrap_or_else(|| panic!("{created}"));

    let shots = support::workspace().join("target/dashboard");
    let browser = Browser::start(&svc.dir.join("chromium")).await;
    let page = server.url("/dashboard/");
    sign_in(&browser, &page).await;

    // While it runs: trials done between rounds, and the best so far.
    browser
        .goto(&format!("{page}#/optimizations/{bayes_id}"))
        .await;
    let seen = browser
        .wait_for(
            "a round's trials and the best so far while the search runs",
            "const d = document.querySelector('#trials-done');
             const b = document.querySelector('#trials-best-score .value');
             const m = d && d.textContent.match(/^(\\d+) of (\\d+) trials$/);
             return m && +m[1] > 0 && +m[1] < +m[2] && b.textContent !== '–'
                 && document.querySelector('h1 .pill').textContent === 'running' ? d.textContent : false",
            WAIT,
        )
        .await;
    let done: u64 = seen
        .as_str()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(done % 8, 0, "trials move a round at a time: {seen}");
    browser.resize(1400, 900).await;
    browser.screenshot(&shots.join("bayes-running.png")).await;
    let searched = wait_done(&http, &server, &format!("/api/v1/optimizations/{bayes_id}")).await;
    assert_eq!(searched["trials"]["done"], 24, "{searched}");
    assert_eq!(searched["trials"]["best"], searched["top"][0], "{searched}");
    browser
        .wait_for(
            "the completed search",
            "const d = document.querySelector('#trials-done');
             return d && d.textContent === '24 of 24 trials' && document.querySelector('#ranking') !== null",
            WAIT,
        )
        .await;
    let best = shown(&text_of(&browser, "#trials-best-score .value").await);
    let score = searched["top"][0]["score"].as_f64().unwrap();
    assert!((best - score).abs() < 1e-4, "{best} against {score}");
    let params = text_of(&browser, "#trials-best-params .value").await;
    let period = &searched["top"][0]["params"]["period"];
    assert!(params.contains(&format!("period={period}")), "{params}");

    // The walk-forward: one stitched curve over 3 bands, a row per window.
    browser
        .goto(&format!("{page}#/optimizations/{walk_id}"))
        .await;
    browser
        .wait_for(
            "the stitched equity chart",
            "return document.querySelector('#walk-forward-chart .uplot[data-drawn]') !== null",
            WAIT,
        )
        .await;
    let bands = browser
        .eval("return window.stratboxDashboard.windowBands", json!([]))
        .await;
    assert_eq!(bands, json!(3));
    let band_pixels = browser
        .eval(
            COUNT_PIXELS,
            json!(["#walk-forward-chart canvas", BAND_RGB]),
        )
        .await;
    assert!(
        band_pixels.as_i64().unwrap() > 5_000,
        "band pixels: {band_pixels}"
    );
    let line = browser
        .eval(
            COUNT_PIXELS,
            json!(["#walk-forward-chart canvas", [37, 99, 235]]),
        )
        .await;
    assert!(line.as_i64().unwrap() > 300, "equity line pixels: {line}");
    let rows = browser
        .eval(
            "return [...document.querySelectorAll('#wf-windows tbody tr')].map(r => r.cells[3].textContent)",
            json!([]),
        )
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for (row, w) in rows.iter().zip(windows) {
        let chosen = &w["chosen"]["params"];
        for key in ["fast_period", "slow_period", "allow_short"] {
            let want = format!("{key}={}", chosen[key]);
            assert!(row.as_str().unwrap().contains(&want), "{row}: {want}");
        }
    }
    let trades = shown(&text_of(&browser, "#wf-trades .value").await);
    assert_eq!(trades, report["stitched"]["num_trades"].as_f64().unwrap());
    let ret = shown(
        text_of(&browser, "#wf-return .value")
            .await
            .trim_end_matches(" %"),
    );
    let want = report["stitched"]["total_return_pct"].as_f64().unwrap();
    assert!((ret - want).abs() < 0.01, "{ret} against {want}");
    let stray = browser
        .eval(
            "return document.querySelector('main').innerText.split('\\n').filter(l => l.trim() === 'null').length",
            json!([]),
        )
        .await;
    assert_eq!(stray, json!(0), "a null printed on the page");
    browser.resize(1400, 1800).await;
    browser.screenshot(&shots.join("walk-forward.png")).await;

    for (level, message) in browser.console().await {
        assert!(
            level != "SEVERE" || message.contains("401"),
            "console {level}: {message}"
        );
        assert!(
            !message.contains("Content Security Policy"),
            "CSP refusal: {message}"
        );
    }
    browser.close().await;
}
