//! Many hosts: worker processes that share nothing but the Redis address
//! and the prefix (each its own cache directory, HOME, TMPDIR and
//! default consumer name) complete a mixed load submitted
//! through the real API, one of them killed with SIGKILL mid-load.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use stratbox_engine::candles;
use stratbox_queue::{TaskInfo, TaskStatus};

use super::api::{upload, Server, TOKEN};
use super::queue_backtest::hourly;
use super::service::{p, Service, FAST_ENV};
use super::support;

const HOUR: i64 = 3600;
const START: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z
const BARS: usize = 2_000;

/// A worker on its own "host": a directory of its own for the compiled
/// code cache, HOME and TMPDIR, and an environment holding nothing of
/// the test's but the Redis address and the prefix. No `--name`: the
/// consumer name is the default `host-pid-bootid`, which on one machine
/// differs by the pid as it would by the host on many.
struct Host {
    child: Option<Child>,
    dir: PathBuf,
    log: PathBuf,
}

impl Host {
    fn start(svc: &Service, name: &str) -> Host {
        let dir = svc.dir.join(format!("host-{name}"));
        for sub in ["cache", "home", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let log = dir.join("worker.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stratbox"));
        cmd.args(["worker", "--workers", "2"])
            .env_clear()
            .env("REDIS_URL", svc.url())
            .env("STRATBOX_PREFIX", &svc.prefix)
            .env("STRATBOX_CACHE_DIR", dir.join("cache"))
            .env("HOME", dir.join("home"))
            .env("TMPDIR", dir.join("tmp"))
            .env("RUST_LOG", "info")
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in FAST_ENV {
            cmd.env(k, v);
        }
        Host {
            child: Some(cmd.spawn().expect("worker starts")),
            dir,
            log,
        }
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// The compiled components in this host's own cache directory.
    fn cached(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir.join("cache").join("compiled")) else {
            return Vec::new();
        };
        entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".cwasm"))
            .collect()
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The consumer name of the live worker process `pid`.
async fn consumer_of(svc: &Service, pid: u32, hosts: &[&Host]) -> String {
    let started = Instant::now();
    loop {
        let live = svc.queue.workers().await.unwrap();
        let mine: Vec<&String> = live
            .keys()
            .filter(|n| n.split('-').any(|part| part == pid.to_string()))
            .collect();
        if let [name] = mine.as_slice() {
            return (*name).clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no heartbeat from pid {pid}: {live:?}; logs:\n{}",
            hosts
                .iter()
                .map(|h| std::fs::read_to_string(&h.log).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn date(ts: i64) -> String {
    stratbox_engine::time::format_rfc3339_secs(ts)
}

/// `stratbox backtest --json` over the record's range, in a cache of its
/// own.
fn local_report(
    dir: &Path,
    data: &candles::Candles,
    record: &stratbox_store::BacktestRecord,
    plugin: &str,
) -> String {
    let def = &record.definition;
    let range = data.range(def.start_ts, def.end_ts);
    let csv = dir.join(format!("range-{}-{}.csv", def.start_ts, def.end_ts));
    let mut bytes = Vec::new();
    candles::write_csv(&range, &mut bytes).unwrap();
    std::fs::write(&csv, bytes).unwrap();
    let plugin = support::plugin(plugin);
    let mut args: Vec<String> = [
        "backtest",
        "--plugin",
        p(&plugin),
        "--candles",
        p(&csv),
        "--capital",
        &def.initial_capital.to_string(),
        "--commission",
        &def.commission.to_string(),
        "--leverage",
        &def.leverage.to_string(),
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (name, value) in &def.params {
        args.push("--param".into());
        args.push(format!("{name}={value}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = support::stratbox(dir, &args);
    assert!(out.status.success(), "{}", support::stderr(&out));
    support::stdout(&out).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_sharing_only_redis_complete_a_mixed_load_once() {
    let svc = Service::start("many_hosts").await;
    let server = Server::start(&svc);
    let http = support::http_client();
    let mut a = Host::start(&svc, "a");
    let b = Host::start(&svc, "b");
    let c = Host::start(&svc, "c");
    server.wait_healthy(&http).await;

    // Three processes, three identities: the default name, each its own.
    let mut names = BTreeMap::new();
    for (host, label) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        let name = consumer_of(&svc, host.pid(), &[&a, &b, &c]).await;
        names.insert(label, name);
    }
    assert_eq!(
        names.values().collect::<BTreeSet<_>>().len(),
        3,
        "{names:?}"
    );

    // Two strategies and a year of hourly candles, through the API.
    let mut strategy = BTreeMap::new();
    for plugin in ["ema-crossover", "rsi-reversion"] {
        let (status, body) = upload(&http, &server, plugin).await;
        assert_eq!(status, 201, "{body}");
        strategy.insert(plugin, body["strategy_id"].as_u64().unwrap());
    }
    let data = hourly(BARS, 21);
    let mut csv = Vec::new();
    candles::write_csv(&data, &mut csv).unwrap();
    let csv_path = svc.dir.join("btc.csv");
    std::fs::write(&csv_path, csv).unwrap();
    server
        .import_candles(&http, "BTCUSDT", "1h", &csv_path)
        .await;

    // SIGKILL one host once 60 tasks are done, whether the submissions
    // below are still going or not (a fast host finishes many meanwhile);
    // a replacement starts with an empty cache after them.
    let a_pid = nix::unistd::Pid::from_raw(a.pid() as i32);
    let queue = svc.queue.clone();
    let killer = tokio::spawn(async move {
        let started = Instant::now();
        loop {
            let done = queue.counters().await.unwrap().tasks_completed;
            if done >= 60 {
                nix::sys::signal::kill(a_pid, nix::sys::signal::Signal::SIGKILL).unwrap();
                return done;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{done} done");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });

    // The load: 240 backtests of two strategies over different ranges in
    // three priority classes, four that run out of their own fuel, and one
    // optimization.
    let mut backtests: Vec<(u64, String, &str)> = Vec::new(); // (id, task, plugin)
    let mut out_of_fuel: Vec<(u64, String)> = Vec::new();
    let submit = |body: Value| {
        let (http, server) = (&http, &server);
        async move {
            let (status, created) = server
                .post_json(http, "/api/v1/queue/backtest/create-and-run", &body)
                .await;
            assert_eq!(status, 200, "{created}");
            (
                created["backtest_id"].as_u64().unwrap(),
                created["task_id"].as_str().unwrap().to_string(),
            )
        }
    };
    for i in 0..240i64 {
        let plugin = if i % 3 == 2 {
            "rsi-reversion"
        } else {
            "ema-crossover"
        };
        let start = START + (i % 40) * 24 * HOUR;
        let end = start + (300 + (i % 7) * 100) * HOUR;
        // Classes normal, high, low, independent of the strategy.
        let priority = [5, 8, 2, 5, 5][(i % 5) as usize];
        let mut body = json!({"strategy_id": strategy[plugin], "symbol": "BTCUSDT",
            "timeframe": "1h", "start_date": date(start), "end_date": date(end),
            "initial_capital": 10000.0, "leverage": 1, "commission": 0.0006,
            "priority": priority});
        if plugin == "ema-crossover" {
            body["config"] =
                json!({"params": {"fast_period": 5 + i % 10, "slow_period": 30 + i % 20}});
        }
        let (id, task) = submit(body).await;
        backtests.push((id, task, plugin));
        if i % 60 == 30 {
            let body = json!({"strategy_id": strategy["ema-crossover"], "symbol": "BTCUSDT",
                "timeframe": "1h", "start_date": date(START), "end_date": date(START + 1_500 * HOUR),
                "initial_capital": 10000.0, "leverage": 1, "commission": 0.0006,
                "fuel": 1_000});
            out_of_fuel.push(submit(body).await);
        }
    }
    let (status, created) = server
        .post_json(
            &http,
            "/api/v1/queue/optimization/create-and-run",
            &json!({"strategy_id": strategy["ema-crossover"], "symbol": "BTCUSDT",
                "timeframe": "1h", "start_date": date(START), "end_date": date(START + 1_200 * HOUR),
                "search_space": {"fast_period": [5, 10, 15], "slow_period": [30, 40, 50]},
                "objective": {"metric": "total_return_pct"}}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let optimization = created["optimization_id"].as_u64().unwrap();

    // A low-priority backtest cancelled while it still waits: the hosts
    // are stopped for the moment, or one holding few tasks could take it
    // first (seen on a loaded CI run) and the cancel would find it running.
    let pause = |signal| {
        for host in [&a, &b, &c] {
            let pid = nix::unistd::Pid::from_raw(host.pid() as i32);
            nix::sys::signal::kill(pid, signal).unwrap();
        }
    };
    pause(nix::sys::signal::Signal::SIGSTOP);
    let (cancelled_id, cancelled_task) = submit(json!({"strategy_id": strategy["ema-crossover"],
        "symbol": "BTCUSDT", "timeframe": "1h", "start_date": date(START),
        "end_date": date(START + 500 * HOUR), "initial_capital": 10000.0, "leverage": 1,
        "commission": 0.0006, "priority": 0}))
    .await;
    let r = http
        .delete(server.url(&format!("/api/v1/queue/tasks/{cancelled_task}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let cancel_status = r.status();
    pause(nix::sys::signal::Signal::SIGCONT);
    assert_eq!(cancel_status, 200, "{}", r.text().await.unwrap());

    let started = Instant::now();
    let done = killer.await.unwrap();
    assert!(done < 200, "the load was nearly done before the kill");
    // Reaps the killed process.
    a.kill9();
    let d = Host::start(&svc, "d");
    let d_name = consumer_of(&svc, d.pid(), &[&b, &c, &d]).await;
    assert!(!names.values().any(|n| *n == d_name), "{d_name} reused");
    names.insert("d", d_name.clone());

    // Work for the replacement: on a loaded machine b and c can finish the
    // rest of the load while d is still starting, so four more backtests
    // come while b and c are stopped, and they go on once d has run one.
    let stop_others = |signal| {
        for host in [&b, &c] {
            let pid = nix::unistd::Pid::from_raw(host.pid() as i32);
            nix::sys::signal::kill(pid, signal).unwrap();
        }
    };
    stop_others(nix::sys::signal::Signal::SIGSTOP);
    let mut for_d = Vec::new();
    for (i, plugin) in [
        "ema-crossover",
        "rsi-reversion",
        "ema-crossover",
        "rsi-reversion",
    ]
    .into_iter()
    .enumerate()
    {
        let start = START + i as i64 * 48 * HOUR;
        let (id, task) = submit(json!({"strategy_id": strategy[plugin], "symbol": "BTCUSDT",
            "timeframe": "1h", "start_date": date(start), "end_date": date(start + 400 * HOUR),
            "initial_capital": 10000.0, "leverage": 1, "commission": 0.0006}))
        .await;
        for_d.push(task.clone());
        backtests.push((id, task, plugin));
    }
    let waited = Instant::now();
    'd_ran: loop {
        for task in &for_d {
            if let Some(info) = svc.queue.task(task).await.unwrap() {
                if info.status == TaskStatus::Completed && info.worker.as_deref() == Some(&d_name) {
                    break 'd_ran;
                }
            }
        }
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "the replacement host ran none of the backtests left to it"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_others(nix::sys::signal::Signal::SIGCONT);

    // Every accepted task ends; none is lost.
    let mut tasks: Vec<String> = backtests.iter().map(|(_, t, _)| t.clone()).collect();
    tasks.extend(out_of_fuel.iter().map(|(_, t)| t.clone()));
    tasks.push(cancelled_task.clone());
    let opt = loop {
        let r = svc
            .store
            .get_optimization(optimization)
            .await
            .unwrap()
            .unwrap();
        if r.status.as_str() != "queued" && r.status.as_str() != "running" {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "{r:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(opt.status.as_str(), "completed", "{opt:?}");
    assert_eq!((opt.combinations, opt.done), (9, opt.chunks), "{opt:?}");
    let opt_tasks = svc
        .store
        .optimization_task_ids(optimization, opt.chunks)
        .await
        .unwrap();
    assert_eq!(opt_tasks.len(), opt.chunks + 1);
    tasks.extend(opt_tasks);
    assert_eq!(
        tasks.iter().collect::<BTreeSet<_>>().len(),
        tasks.len(),
        "task ids are unique"
    );
    let mut infos: BTreeMap<String, TaskInfo> = BTreeMap::new();
    for task in &tasks {
        let info = svc.wait_final(task, Duration::from_secs(90)).await;
        infos.insert(task.clone(), info);
    }
    let count = |status: TaskStatus| infos.values().filter(|i| i.status == status).count() as i64;
    let (completed, failed, cancelled) = (
        count(TaskStatus::Completed),
        count(TaskStatus::Failed),
        count(TaskStatus::Cancelled),
    );
    assert_eq!((failed, cancelled), (4, 1), "{infos:?}");
    assert_eq!(completed + failed + cancelled, tasks.len() as i64);

    // Counted once each: a redelivery after the kill completes nothing twice.
    let counters = svc.queue.counters().await.unwrap();
    assert_eq!(counters.tasks_submitted, tasks.len() as i64, "{counters:?}");
    assert_eq!(counters.tasks_completed, completed, "{counters:?}");
    assert_eq!(counters.tasks_failed, failed, "{counters:?}");
    assert_eq!(counters.active_tasks, 0, "{counters:?}");
    assert_eq!(server.completed_in_history(&http, 5).await, completed);
    svc.assert_drained().await;

    // Each backtest's record: completed by its own (only) task, with a
    // report; the killed host's running tasks were redelivered.
    let mut ran_by: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
    let mut redelivered = 0;
    for (id, task, plugin) in &backtests {
        let record = svc.store.get_backtest(*id).await.unwrap().unwrap();
        assert_eq!(record.status.as_str(), "completed", "{record:?}");
        assert_eq!(record.task_id.as_deref(), Some(task.as_str()));
        assert!(record.report.is_some(), "{record:?}");
        let info = &infos[task];
        assert_eq!(info.status, TaskStatus::Completed, "{info:?}");
        if info.attempts > 1 {
            redelivered += 1;
        }
        let worker = info.worker.clone().unwrap();
        ran_by.entry(worker).or_default().insert(plugin);
    }
    assert!(redelivered >= 1, "nothing was running on the killed host");
    // Every host took work, the killed one included.
    for (label, name) in &names {
        assert!(
            ran_by.contains_key(name),
            "host {label} ({name}) ran nothing: {ran_by:?}"
        );
    }
    assert!(
        ran_by.keys().all(|w| names.values().any(|n| n == w)),
        "{ran_by:?}"
    );

    // Out of fuel: failed for good, in the dead-letter stream with reason.
    let dlq = svc.queue.dlq(100).await.unwrap();
    assert_eq!(dlq.len(), 4, "{dlq:?}");
    for (id, task) in &out_of_fuel {
        let entry = dlq
            .iter()
            .find(|e| e.fields["task_id"] == *task)
            .unwrap_or_else(|| panic!("{task} not in the DLQ: {dlq:?}"));
        assert_eq!(entry.fields["reason"], "fuel_exhausted");
        // Permanent: dead-lettered by the first run, which is the second
        // delivery if the killed host held the task.
        let attempts = entry.fields["attempts"].as_str();
        assert!(attempts == "1" || attempts == "2", "{entry:?}");
        let record = svc.store.get_backtest(*id).await.unwrap().unwrap();
        assert_eq!(record.status.as_str(), "failed", "{record:?}");
        assert!(record.report.is_none());
    }
    let record = svc.store.get_backtest(cancelled_id).await.unwrap().unwrap();
    assert_eq!(record.status.as_str(), "cancelled", "{record:?}");
    assert!(record.report.is_none());

    // Reports equal the local CLI's byte for byte: a sample of each
    // strategy, and every one the killed host's death redelivered.
    let local_dir = svc.dir.join("local");
    std::fs::create_dir_all(&local_dir).unwrap();
    for (n, (id, task, plugin)) in backtests.iter().enumerate() {
        if n % 20 != 0 && n % 20 != 2 && infos[task].attempts == 1 {
            continue;
        }
        let record = svc.store.get_backtest(*id).await.unwrap().unwrap();
        let local = local_report(&local_dir, &data, &record, plugin);
        assert_eq!(
            record.report.as_deref(),
            Some(local.as_str()),
            "backtest {id}"
        );
    }

    // Each host compiled into its own cache: every strategy it ran is
    // there, as a compiled component.
    let hosts = [("a", &a), ("b", &b), ("c", &c), ("d", &d)];
    let sha: BTreeMap<&str, String> = {
        let mut sha = BTreeMap::new();
        for plugin in ["ema-crossover", "rsi-reversion"] {
            let (_, body) = server
                .get_json(&http, &format!("/api/v1/strategies/{}", strategy[plugin]))
                .await;
            sha.insert(plugin, body["sha256"].as_str().unwrap().to_string());
        }
        sha
    };
    for (label, host) in hosts {
        let cached = host.cached();
        for plugin in &ran_by[&names[label]] {
            assert!(
                cached.iter().any(|f| f.starts_with(&sha[plugin])),
                "host {label} ran {plugin} but its cache holds {cached:?}"
            );
        }
    }
}
