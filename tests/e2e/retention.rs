//! Retention: 50,000 backtests through a real worker whose retention loop
//! keeps 10,000; Redis's memory stays flat once the count is reached.

use std::time::{Duration, Instant};

use stratbox_service::tasks::{submit_backtests, SubmitOptions};

use super::queue_backtest::{definition, hourly};
use super::service::Service;

const HOUR: i64 = 3600;
const START: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z
const KEEP: usize = 10_000;
const TOTAL: usize = 50_000;
/// Few bars: the test is about records, not runs.
const BARS: usize = 40;
const BATCH: usize = 500;
/// Submitted but not finished, at most: the streams stay short, so what
/// memory measures is the records.
const IN_FLIGHT: i64 = 2_000;

async fn used_memory(svc: &Service) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut svc.store.connection())
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory in INFO memory")
}

async fn records(svc: &Service) -> usize {
    redis::cmd("ZCARD")
        .arg(svc.store.keys().backtests())
        .query_async(&mut svc.store.connection())
        .await
        .unwrap()
}

async fn finished(svc: &Service) -> i64 {
    let c = svc.queue.counters().await.unwrap();
    c.tasks_completed + c.tasks_failed + c.tasks_timeout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_thousand_backtests_keep_ten_thousand_and_memory_stays_flat() {
    let svc = Service::start("retention").await;
    svc.store
        .import_candles("BTCUSDT", HOUR, &hourly(BARS, 7))
        .await
        .unwrap();
    let sha = svc.put_plugin("ema-crossover").await;
    let mut def = definition(&sha, "BTCUSDT", START, START + (BARS as i64 - 1) * HOUR);
    def.params.insert("fast_period".into(), 3.into());
    def.params.insert("slow_period".into(), 8.into());
    let worker = svc.worker(
        "w1",
        2,
        &[
            ("STRATBOX_RETENTION_MAX_COUNT", "10000"),
            ("STRATBOX_RETENTION_INTERVAL_MS", "100"),
        ],
    );
    let started = Instant::now();
    let options = SubmitOptions::default();
    let requests = vec![def; BATCH];
    let mut submitted = 0usize;
    let mut samples: Vec<(usize, u64, usize)> = Vec::new();
    while submitted < TOTAL {
        while submitted as i64 - finished(&svc).await > IN_FLIGHT {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        submit_backtests(&svc.store, &svc.queue, &requests, &options)
            .await
            .unwrap();
        submitted += BATCH;
        if submitted.is_multiple_of(10_000) && submitted >= 20_000 {
            // Every run done, then the loop's next sweep.
            let waiting = Instant::now();
            while finished(&svc).await < submitted as i64 || records(&svc).await > KEEP + 100 {
                assert!(
                    waiting.elapsed() < Duration::from_secs(60),
                    "{} finished, {} records, worker log:\n{}",
                    finished(&svc).await,
                    records(&svc).await,
                    worker.log_text()
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let sample = (submitted, used_memory(&svc).await, records(&svc).await);
            eprintln!(
                "retention: {} submitted, used_memory {} bytes, {} records, {:.1} s",
                sample.0,
                sample.1,
                sample.2,
                started.elapsed().as_secs_f64()
            );
            samples.push(sample);
        }
    }
    let c = svc.queue.counters().await.unwrap();
    assert_eq!(c.tasks_completed, TOTAL as i64, "{c:?}");
    for (n, _, kept) in &samples {
        assert!(*kept <= KEEP + 100, "{kept} records at {n}");
        assert!(
            *kept >= KEEP,
            "only {kept} records at {n}: the newest are kept"
        );
    }
    // Flat: at 50,000 within 10% of 20,000 (the count was reached by then).
    let (first, last) = (samples[0].1 as f64, samples[samples.len() - 1].1 as f64);
    assert!(
        (last - first).abs() <= 0.1 * first,
        "used_memory {samples:?}"
    );
    // The newest are the ones kept, each whole, and nothing else of the
    // deleted ones remains: no log or homes entry beyond the kept.
    let kept = svc.store.list_backtests(1).await.unwrap();
    assert_eq!(kept[0].status.as_str(), "completed");
    let mut conn = svc.store.connection();
    let homes: usize = redis::cmd("HLEN")
        .arg(svc.queue.keys().task_homes())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        homes <= samples[samples.len() - 1].2,
        "{homes} homes entries"
    );
    let dbsize: usize = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert!(dbsize < KEEP + 200, "{dbsize} keys");
    let log = worker.log_text();
    assert!(log.contains("retention: deleted"), "{log}");
}
