//! Schedules fired by two `stratbox scheduler` processes at once: each
//! occurrence is submitted exactly once (a backtest, or an optimization
//! with its record); a paused schedule stops.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stratbox_engine::optimize::Direction;
use stratbox_store::schedules::{ScheduleDefinition, Submission};
use stratbox_store::{BacktestStatus, OptimizationRequest};

use super::queue_backtest::{definition, hourly};
use super::service::Service;

const HOUR: i64 = 3600;
const START: i64 = 1_704_067_200;

struct Scheduler(Child);

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scheduler(svc: &Service, n: usize) -> Scheduler {
    let log = std::fs::File::create(svc.dir.join(format!("scheduler-{n}.log"))).unwrap();
    Scheduler(
        Command::new(env!("CARGO_BIN_EXE_stratbox"))
            .arg("scheduler")
            .env("REDIS_URL", svc.url())
            .env("STRATBOX_PREFIX", &svc.prefix)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_fire_each_occurrence_once_and_pause_stops_them() {
    let svc = Service::start("scheduler").await;
    let sha = svc.put_plugin("ema-crossover").await;
    svc.store
        .import_candles("BTCUSDT", HOUR, &hourly(300, 5))
        .await
        .unwrap();
    let backtest = definition(&sha, "BTCUSDT", START, START + 200 * HOUR);
    let _a = scheduler(&svc, 1);
    let _b = scheduler(&svc, 2);
    let _worker = svc.worker("w1", 2, &[]);

    // Every second for 10 seconds: occurrences at start, start + 1 s, ...
    // start + 9 s.
    let start_ms = (stratbox_redis::clock::now_ms() / 1000 + 2) * 1000;
    let every_second = ScheduleDefinition {
        name: Some("every second".into()),
        cron: None,
        every_secs: Some(1),
        start_at_ms: start_ms,
        end_at_ms: Some(start_ms + 9_000),
        priority: 5,
        submits: Submission::Backtest(backtest.clone()),
    };
    let ten = svc
        .store
        .create_schedule(&every_second, Some(start_ms))
        .await
        .unwrap();
    // And one with no end, paused after a few runs.
    let endless = ScheduleDefinition {
        name: Some("paused later".into()),
        end_at_ms: None,
        ..every_second.clone()
    };
    let paused = svc
        .store
        .create_schedule(&endless, Some(start_ms))
        .await
        .unwrap();

    let started = Instant::now();
    let runs = |id: u64| {
        let store = svc.store.clone();
        async move { store.get_schedule(id).await.unwrap().unwrap().runs }
    };
    while runs(paused).await < 3 {
        assert!(started.elapsed() < Duration::from_secs(30), "never fired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(svc
        .store
        .set_schedule_paused(paused, true, None)
        .await
        .unwrap());
    let at_pause = runs(paused).await;

    // Past the window of the first, with a margin.
    let end = start_ms + 9_000 + 2_500;
    while stratbox_redis::clock::now_ms() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = svc.store.get_schedule(ten).await.unwrap().unwrap();
    assert_eq!(record.runs, 10, "{record:?}");
    assert_eq!(record.next_run_ms, None, "ended");
    assert_eq!(record.last_run_ms, Some(start_ms + 9_000));
    assert_eq!(record.last_error, None);
    let stopped = svc.store.get_schedule(paused).await.unwrap().unwrap();
    assert!(stopped.paused);
    // One firing may have been in flight at the pause: its guard fails.
    assert_eq!(stopped.runs, at_pause, "fired while paused");

    // Exactly that many submissions, all run.
    let counters = svc.queue.counters().await.unwrap();
    assert_eq!(
        counters.tasks_submitted as u64,
        10 + at_pause,
        "{counters:?}"
    );
    let backtests = svc.store.list_backtests(100).await.unwrap();
    assert_eq!(backtests.len() as u64, 10 + at_pause);
    let started = Instant::now();
    while svc.queue.counters().await.unwrap().tasks_completed as u64 != 10 + at_pause {
        assert!(started.elapsed() < Duration::from_secs(30), "not all ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_schedulers_fire_an_optimization_schedule_once_per_occurrence() {
    let svc = Service::start("scheduler-opt").await;
    let sha = svc.put_plugin("ema-crossover").await;
    svc.store
        .import_candles("BTCUSDT", HOUR, &hourly(300, 5))
        .await
        .unwrap();
    let _a = scheduler(&svc, 1);
    let _b = scheduler(&svc, 2);
    let _worker = svc.worker("w1", 2, &[]);

    // A 2 x 2 grid every second, three times.
    let sweep = OptimizationRequest {
        backtest: definition(&sha, "BTCUSDT", START, START + 200 * HOUR),
        search_space: serde_json::from_value(
            serde_json::json!({"fast_period": [5, 10], "slow_period": [20, 30]}),
        )
        .unwrap(),
        method: "grid".into(),
        samples: None,
        batch: None,
        startup: None,
        seed: 0,
        metric: "total_return_pct".into(),
        direction: Direction::Maximize,
        min_trades: 0,
        constraint: None,
        holdout: Some("0.25".into()),
        walk_forward: None,
        max_combinations: None,
    };
    const RUNS: usize = 3;
    let start_ms = (stratbox_redis::clock::now_ms() / 1000 + 2) * 1000;
    let end_ms = start_ms + (RUNS as i64 - 1) * 1000;
    let id = svc
        .store
        .create_schedule(
            &ScheduleDefinition {
                name: Some("sweep every second".into()),
                cron: None,
                every_secs: Some(1),
                start_at_ms: start_ms,
                end_at_ms: Some(end_ms),
                priority: 5,
                submits: Submission::Optimization(sweep),
            },
            Some(start_ms),
        )
        .await
        .unwrap();

    // Past the last occurrence, with a margin.
    while stratbox_redis::clock::now_ms() < end_ms + 2_500 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let record = svc.store.get_schedule(id).await.unwrap().unwrap();
    assert_eq!(record.runs, RUNS as u64, "{record:?}");
    assert_eq!(record.next_run_ms, None, "ended");
    assert_eq!(record.last_run_ms, Some(end_ms));
    assert_eq!(record.last_error, None);
    assert_eq!(record.last_backtest_id, None);

    // Exactly one optimization per occurrence, each run to the end.
    let listed = svc.store.list_optimizations(100).await.unwrap();
    assert_eq!(listed.len(), RUNS, "{listed:?}");
    assert_eq!(record.last_optimization_id, Some(listed[0].id));
    let started = Instant::now();
    for optimization in &listed {
        loop {
            let r = svc
                .store
                .get_optimization(optimization.id)
                .await
                .unwrap()
                .unwrap();
            if r.status.is_terminal() {
                assert_eq!(r.status, BacktestStatus::Completed, "{r:?}");
                assert_eq!((r.combinations, r.done), (4, 4));
                let top: Vec<serde_json::Value> =
                    serde_json::from_str(r.top.as_deref().unwrap()).unwrap();
                assert_eq!(top.len(), 4);
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "not done: {r:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Per occurrence: one fan-out task and one task per chunk, no more
    // (the last chunk's completion is counted just after its reduce).
    let counters = svc.queue.counters().await.unwrap();
    assert_eq!(counters.tasks_submitted, RUNS as i64 * 5, "{counters:?}");
    while svc.queue.counters().await.unwrap().tasks_completed != RUNS as i64 * 5 {
        assert!(started.elapsed() < Duration::from_secs(60), "not all ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    svc.assert_drained().await;
}
