//! Strategies in Python and JavaScript: the same strategy in Rust, Python
//! and JavaScript gives the same report (local CLI and queue), hostile
//! guests end with named errors while the worker keeps serving, a Python
//! component that imports WASI is refused with how to build it, and the
//! scaffolds pass their own tests.
//!
//! Interpreter components take 7-18 s to build and 6-12 s to compile, so
//! builds are cached by `stratbox plugin build` (keyed by their inputs)
//! and compiled code in one cache directory shared by these tests and
//! kept between runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stratbox_engine::candles;

use super::api::{upload_bytes, Server};
use super::service::WorkerProc;
use super::service::{p, Service};
use super::support;

fn toolchains() -> PathBuf {
    support::target_dir().join("toolchains")
}

/// Compiled code of the interpreter components, shared across tests.
pub(super) fn shared_cache() -> PathBuf {
    support::target_dir().join("guest-cache")
}

/// The component built from `plugins/<dir>` by `stratbox plugin build`,
/// which detects the language (one build at a time: they are heavy).
pub(super) fn guest(dir: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<BTreeMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(|| Mutex::new(BTreeMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(path) = built.get(dir) {
        return path.clone();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(["plugin", "build"])
        .arg(support::workspace().join("plugins").join(dir))
        .arg("--toolchains")
        .arg(toolchains())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "building {dir} failed:\n{}",
        support::stderr(&out)
    );
    let path = PathBuf::from(support::stdout(&out).trim());
    built.insert(dir.to_string(), path.clone());
    path
}

/// `stratbox backtest --json` with the shared compiled-code cache.
fn local_report(plugin: &Path, csv: &Path, params: &[(&str, &str)]) -> Value {
    let mut args = vec![
        "backtest".to_string(),
        "--plugin".into(),
        p(plugin).into(),
        "--candles".into(),
        p(csv).into(),
        "--json".into(),
    ];
    for (name, value) in params {
        args.push("--param".into());
        args.push(format!("{name}={value}"));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(&args)
        .env("STRATBOX_CACHE_DIR", shared_cache())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        plugin.display(),
        support::stderr(&out)
    );
    serde_json::from_str(support::stdout(&out).trim()).unwrap()
}

/// A report without what differs by construction between languages: the
/// component's sha256 and the fuel it burned.
pub(super) fn trading(mut report: Value) -> Value {
    let object = report.as_object_mut().unwrap();
    assert!(object.remove("fuel_used").is_some());
    let strategy = object["strategy"].as_object_mut().unwrap();
    assert!(strategy.remove("sha256").is_some());
    report
}

const EMA: &[(&str, &str)] = &[
    ("fast_period", "5"),
    ("slow_period", "20"),
    ("allow_short", "true"),
];
const RSI: &[(&str, &str)] = &[
    ("rsi_period", "5"),
    ("oversold", "35"),
    ("overbought", "65"),
    ("allow_short", "true"),
];

#[test]
fn rust_python_and_javascript_give_the_same_reports() {
    let dir = support::scratch("languages_local");
    let (csv, _) = support::candles_csv(&dir, 3_000, 11, 3600);
    for (name, params) in [("ema-crossover", EMA), ("rsi-reversion", RSI)] {
        let rust = local_report(&support::plugin(name), &csv, params);
        assert!(rust["num_trades"].as_u64().unwrap() > 20, "{name}: {rust}");
        let rust_text = trading(rust).to_string();
        for lang in ["python", "js"] {
            let report = local_report(&guest(&format!("{name}/{lang}")), &csv, params);
            assert_eq!(
                trading(report).to_string(),
                rust_text,
                "{name} in {lang} differs from Rust"
            );
        }
    }
}

/// Uploads an interpreter component the server has not compiled: checked
/// at once and answered 202, compiled in the background; polls until it
/// is stored.
async fn upload_guest(http: &reqwest::Client, server: &Server, path: &Path) -> u64 {
    let started = Instant::now();
    let (status, reply) = upload_bytes(http, server, std::fs::read(path).unwrap()).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the upload reply took {:?}",
        started.elapsed()
    );
    assert_eq!(status, 202, "{reply}");
    assert_eq!(reply["status"], "compiling", "{reply}");
    wait_stored(http, server, &reply).await
}

/// The strategy id of an upload: at once (201, 200), or once its
/// background compile ends (202).
async fn wait_stored(http: &reqwest::Client, server: &Server, reply: &Value) -> u64 {
    if let Some(id) = reply["strategy_id"].as_u64() {
        return id;
    }
    let started = Instant::now();
    let poll = reply["poll"].as_str().unwrap().to_string();
    loop {
        let (status, state) = server.get_json(http, &poll).await;
        assert_eq!(status, 200, "{state}");
        match state["status"].as_str().unwrap() {
            "ready" => return state["strategy"]["strategy_id"].as_u64().unwrap(),
            "compiling" => {}
            other => panic!("upload {other}: {state}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "still compiling: {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs a backtest of `strategy_id` over the stored BTCUSDT 1h series
/// through the queue; the final record.
async fn queued(
    http: &reqwest::Client,
    server: &Server,
    strategy_id: u64,
    params: &[(&str, &str)],
    extra: Value,
) -> Value {
    let params: serde_json::Map<String, Value> = params
        .iter()
        .map(|(k, v)| {
            let value = v
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| v.parse::<bool>().map(Value::from))
                .unwrap_or_else(|_| Value::from(v.parse::<f64>().unwrap()));
            (k.to_string(), value)
        })
        .collect();
    let mut request = json!({"strategy_id": strategy_id, "symbol": "BTCUSDT", "timeframe": "1h",
        "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-05-05T00:00:00Z",
        "config": {"params": params}});
    for (k, v) in extra.as_object().unwrap() {
        request[k] = v.clone();
    }
    let (status, created) = server
        .post_json(http, "/api/v1/queue/backtest/create-and-run", &request)
        .await;
    assert_eq!(status, 200, "{created}");
    let path = format!("/api/v1/backtests/{}", created["backtest_id"]);
    server.wait_final(http, &path).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_through_the_queue_match_the_local_cli() {
    let svc = Service::start("languages_queue").await;
    // The API compiles in a cache of its own (so the uploads really take
    // the background path); the worker shares the tests' cache.
    let server = Server::start(&svc);
    let cache = shared_cache();
    let _worker = svc.worker("w1", 1, &[("STRATBOX_CACHE_DIR", p(&cache))]);
    let http = support::http_client();
    server.wait_healthy(&http).await;

    let data = super::queue_backtest::hourly(3_000, 5);
    let mut csv = Vec::new();
    candles::write_csv(&data, &mut csv).unwrap();
    let csv_path = svc.dir.join("btc.csv");
    std::fs::write(&csv_path, &csv).unwrap();
    server
        .import_candles(&http, "BTCUSDT", "1h", &csv_path)
        .await;

    let (status, rust) = upload_bytes(&http, &server, support::plugin_bytes("ema-crossover")).await;
    assert_eq!(status, 201, "{rust}");
    let rust_id = rust["strategy_id"].as_u64().unwrap();
    assert_eq!(rust["runtime"], "compiled", "{rust}");
    let rust_report = queued(&http, &server, rust_id, EMA, json!({})).await;
    assert_eq!(rust_report["status"], "completed", "{rust_report}");
    let expected = trading(rust_report["report"].clone());
    assert!(expected["num_trades"].as_u64().unwrap() > 10);

    for lang in ["python", "js"] {
        let path = guest(&format!("ema-crossover/{lang}"));
        let id = upload_guest(&http, &server, &path).await;
        // The same bytes again: already stored, answered at once.
        let (status, again) = upload_bytes(&http, &server, std::fs::read(&path).unwrap()).await;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["strategy_id"], id);
        let runtime = if lang == "js" { "javascript" } else { "python" };
        assert_eq!(again["runtime"], runtime, "{again}");
        let record = queued(&http, &server, id, EMA, json!({})).await;
        assert_eq!(record["status"], "completed", "{lang}: {record}");
        // Byte for byte the local CLI's report, and Rust's trading.
        let range_csv = svc.dir.join(format!("range-{lang}.csv"));
        let end = record["report"]["end_ts"].as_i64().unwrap();
        let mut bytes = Vec::new();
        candles::write_csv(&data.range(1_704_067_200, end + 1), &mut bytes).unwrap();
        std::fs::write(&range_csv, bytes).unwrap();
        let local = local_report(&path, &range_csv, EMA);
        assert_eq!(record["report"], local, "{lang}: queue and CLI differ");
        assert_eq!(trading(local), expected, "{lang} differs from Rust");
    }
}

/// A service whose API and worker share the tests' compiled-code cache,
/// with 3,000 hourly BTCUSDT bars stored.
async fn shared_service(test: &str) -> (Service, Server, WorkerProc, reqwest::Client) {
    let svc = Service::start(test).await;
    let cache = shared_cache();
    let server = Server::start_with(&svc, &[("STRATBOX_CACHE_DIR", p(&cache))]);
    let worker = svc.worker("w1", 1, &[("STRATBOX_CACHE_DIR", p(&cache))]);
    let http = support::http_client();
    server.wait_healthy(&http).await;
    let (csv, _) = support::candles_csv(&svc.dir, 3_000, 5, 3600);
    server.import_candles(&http, "BTCUSDT", "1h", &csv).await;
    (svc, server, worker, http)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsi_reversion_through_the_queue_is_the_same_in_three_languages() {
    let (_svc, server, _worker, http) = shared_service("languages_rsi").await;
    let mut reports = Vec::new();
    for bytes in [
        support::plugin_bytes("rsi-reversion"),
        std::fs::read(guest("rsi-reversion/python")).unwrap(),
        std::fs::read(guest("rsi-reversion/js")).unwrap(),
    ] {
        let (status, reply) = upload_bytes(&http, &server, bytes).await;
        assert!([200, 201, 202].contains(&status), "{reply}");
        let id = wait_stored(&http, &server, &reply).await;
        let record = queued(&http, &server, id, RSI, json!({})).await;
        assert_eq!(record["status"], "completed", "{record}");
        reports.push(trading(record["report"].clone()));
    }
    assert!(
        reports[0]["num_trades"].as_u64().unwrap() > 10,
        "{}",
        reports[0]
    );
    assert_eq!(reports[1], reports[0], "python differs from rust");
    assert_eq!(reports[2], reports[0], "javascript differs from rust");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_python_and_javascript_end_with_named_errors_and_the_worker_serves_on() {
    let (_svc, server, _worker, http) = shared_service("languages_hostile").await;

    let rust = upload_bytes(&http, &server, support::plugin_bytes("ema-crossover"))
        .await
        .1["strategy_id"]
        .as_u64()
        .unwrap();
    // (mode, how its run ends): 1 an endless loop, 2 a memory bomb, 3
    // unbounded recursion, 4 an exception, 5 reading /etc/passwd, 6 the
    // clock. Python's SDK turns file and clock calls into a named
    // PermissionError (the strategy catches the file one and goes on);
    // JavaScript has no file API at all, and its `performance.now()` traps.
    let cases: &[(&str, &[(i64, &str)])] = &[
        (
            "hostile-python",
            &[
                (1, "fuel_exhausted"),
                (2, "memory_limit"),
                (3, "strategy_trap: RecursionError"),
                (4, "strategy_trap: RuntimeError"),
                (5, "completed"),
                (6, "strategy_trap: PermissionError: time.time"),
            ],
        ),
        (
            "hostile-js",
            &[
                (1, "fuel_exhausted"),
                (2, "memory_limit"),
                (3, "strategy_trap"),
                (4, "strategy_trap"),
                (5, "strategy_trap"),
                (6, "strategy_trap"),
            ],
        ),
    ];
    for (dir, modes) in cases {
        let path = guest(dir);
        let (status, reply) = upload_bytes(&http, &server, std::fs::read(&path).unwrap()).await;
        // At once when an earlier run left it compiled in the shared cache.
        assert!([200, 201, 202].contains(&status), "{reply}");
        let id = wait_stored(&http, &server, &reply).await;
        for (mode, expected) in *modes {
            let mode_value = mode.to_string();
            // The memory bomb gets fuel enough to reach the memory cap.
            let fuel: u64 = if *mode == 2 {
                1_000_000_000_000
            } else {
                2_000_000_000
            };
            let started = Instant::now();
            let record = queued(
                &http,
                &server,
                id,
                &[("mode", &mode_value)],
                json!({"fuel": fuel, "timeout_ms": 20_000}),
            )
            .await;
            let outcome = match record["status"].as_str().unwrap() {
                "completed" => "completed".to_string(),
                _ => record["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            };
            assert!(
                outcome.starts_with(expected),
                "{dir} mode {mode}: {outcome} after {:?}: {record}",
                started.elapsed()
            );
            if outcome == "completed" {
                // The file was not read: the strategy logged the refusal,
                // and nothing it traded on came from outside.
                assert_eq!(record["report"]["num_trades"], 0, "{dir} mode {mode}");
                let (_, log) = server
                    .get_json(
                        &http,
                        &format!("/api/v1/backtests/{}/log", record["backtest_id"]),
                    )
                    .await;
                assert!(
                    log.to_string()
                        .contains("not available in the stratbox sandbox"),
                    "{dir} mode {mode}: {log}"
                );
            }
        }
        // The worker is still there and still right.
        let ok = queued(&http, &server, rust, EMA, json!({})).await;
        assert_eq!(ok["status"], "completed", "after {dir}: {ok}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_component_importing_wasi_is_refused_with_how_to_build_it() {
    let svc = Service::start("languages_wasi").await;
    let server = Server::start(&svc);
    let http = support::http_client();
    server.wait_healthy(&http).await;
    // The Python example built by hand without `--stub-wasi`.
    let tool = toolchains().join("py/bin/componentize-py");
    guest("ema-crossover/python"); // installs the toolchain if needed
    let out_path = support::target_dir().join("guest-wasi-python.wasm");
    if !out_path.is_file() {
        let partial = svc.dir.join("wasi.wasm");
        let out = Command::new(&tool)
            .arg("-d")
            .arg(support::workspace().join("wit"))
            .args(["-w", "plugin", "componentize", "-p"])
            .arg(support::workspace().join("plugins/ema-crossover/python"))
            .arg("-p")
            .arg(support::workspace().join("sdk/python/src"))
            .arg("app")
            .arg("-o")
            .arg(&partial)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", support::stderr(&out));
        std::fs::rename(&partial, &out_path).unwrap();
    }
    let started = Instant::now();
    let (status, refused) = upload_bytes(&http, &server, std::fs::read(&out_path).unwrap()).await;
    assert_eq!(status, 422, "{refused}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("forbidden import"), "{message}");
    assert!(message.contains("wasi:"), "{message}");
    assert!(message.contains("--stub-wasi"), "{message}");
    assert!(message.contains("stratbox plugin build"), "{message}");
    // The CLI says the same.
    let out = support::stratbox(&svc.dir, &["plugin", "inspect", p(&out_path)]);
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("--stub-wasi"),
        "{}",
        support::stderr(&out)
    );
}

#[test]
fn python_and_javascript_scaffolds_pass_their_own_tests_and_build() {
    let dir = support::scratch("languages_scaffold");
    let python = toolchains().join("py/bin/python");
    guest("ema-crossover/python"); // installs the toolchain if needed
    for (lang, test) in [
        (
            "python",
            vec![
                p(&python).to_string(),
                "-m".into(),
                "pytest".into(),
                "-q".into(),
            ],
        ),
        ("js", vec!["node".to_string(), "--test".into()]),
    ] {
        let strategy = dir.join(format!("my-{lang}-strategy"));
        let out = support::stratbox(&dir, &["plugin", "new", "--lang", lang, p(&strategy)]);
        assert!(out.status.success(), "{}", support::stderr(&out));
        let out = Command::new(&test[0])
            .args(&test[1..])
            .current_dir(&strategy)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{lang} scaffold tests failed:\n{}\n{}",
            support::stdout(&out),
            support::stderr(&out)
        );
        let out = Command::new(env!("CARGO_BIN_EXE_stratbox"))
            .args(["plugin", "build", p(&strategy), "--toolchains"])
            .arg(toolchains())
            .arg("--out")
            .arg(dir.join(format!("{lang}.wasm")))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", support::stderr(&out));
        // Checked as an upload is (no compile: its source differs by the
        // scaffold's paths, so it would be a fresh 10-30 s compile).
        let bytes = std::fs::read(dir.join(format!("{lang}.wasm"))).unwrap();
        let checked = stratbox_sandbox::precheck(&bytes).unwrap();
        let runtime = if lang == "js" {
            stratbox_sandbox::GuestRuntime::Javascript
        } else {
            stratbox_sandbox::GuestRuntime::Python
        };
        assert_eq!(checked.runtime, runtime);
        assert_eq!(
            checked.contract_version,
            stratbox_sandbox::ContractVersion::CURRENT
        );
    }
}

#[test]
fn the_demo_runs_the_python_twin_and_finds_the_same_report() {
    let dir = support::scratch("languages_demo");
    let python = guest("ema-crossover/python");
    let out = Command::new(env!("CARGO_BIN_EXE_stratbox"))
        .args(["demo", "--exit", "--plugin"])
        .arg(support::plugin("ema-crossover"))
        .arg("--python")
        .arg(&python)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--addr", &format!("127.0.0.1:{}", support::free_port())])
        .env_remove("REDIS_URL")
        .env_remove("STRATBOX_API_TOKEN")
        // A cache of its own: the API compiles the Python twin in the
        // background, and the workers then load it from that cache.
        .env("STRATBOX_CACHE_DIR", dir.join("cache"))
        .output()
        .unwrap();
    let text = support::stdout(&out);
    assert!(out.status.success(), "{text}\n{}", support::stderr(&out));
    for needle in [
        "uploaded the Python twin; the server compiles it in the background...",
        "stored the Python EMA Crossover as strategy 2",
        "the same request in Python:",
        "same trades and figures as Rust: yes, bit for bit",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}
