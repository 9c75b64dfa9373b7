//! A micro benchmark of the queue's hot path, ignored by default: 20,000
//! no-op tasks submitted (1,000 per call), fetched (256 per call, as a
//! worker's batch) and completed (one call per fetch). Prints tasks/s
//! per phase and Redis's CPU per task, the figure that limits the queue
//! (Redis's single thread); compare builds interleaved, as
//! CONTRIBUTING.md asks:
//!
//! `cargo test -p stratbox-queue --release bench_hot_path -- --ignored --nocapture`
//!
//! `QUEUE_BENCH_LANES=n` spreads the tasks over `n` named lanes (the
//! hot path measured is the default lane's alone, without it).

use super::*;
use std::time::Instant;

const N: usize = 20_000;

/// Redis's CPU time so far (user + sys), in µs.
async fn redis_cpu_us(conn: &mut ConnectionManager) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(conn)
        .await
        .unwrap();
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    (field("used_cpu_user") + field("used_cpu_sys")) * 1e6
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_hot_path() {
    let rounds: usize = std::env::var("QUEUE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let lanes: Vec<Option<String>> = match std::env::var("QUEUE_BENCH_LANES") {
        Ok(n) => (0..n.parse::<usize>().unwrap())
            .map(|i| Some(format!("l{i}")))
            .collect(),
        Err(_) => vec![None],
    };
    let fx = setup(QueueConfig::default()).await;
    let a = fx.consumer("bench").await;
    let mut conn = fx.conn.clone();
    for round in 1..=rounds {
        let cpu0 = redis_cpu_us(&mut conn).await;
        let t0 = Instant::now();
        for _ in 0..N / 1_000 {
            let specs: Vec<TaskSpec> = (0..1_000)
                .map(|i| TaskSpec {
                    lane: lanes[i % lanes.len()].clone(),
                    ..TaskSpec::new("noop", "{}".into())
                })
                .collect();
            fx.queue.submit(&specs).await.unwrap();
        }
        let submitted = t0.elapsed();
        let cpu1 = redis_cpu_us(&mut conn).await;
        let t1 = Instant::now();
        let mut left = N;
        while left > 0 {
            let ds = a.fetch(256, false).await.unwrap();
            assert!(!ds.is_empty(), "{left} tasks never came");
            let outcomes: Vec<(Held, Outcome)> = ds.iter().map(|d| done(d, "r")).collect();
            a.complete(&outcomes).await.unwrap();
            left -= ds.len();
        }
        let drained = t1.elapsed();
        let cpu2 = redis_cpu_us(&mut conn).await;
        let per_s = |d: Duration| N as f64 / d.as_secs_f64();
        println!(
            "round {round}: submit {:.0} tasks/s ({:.1} us Redis CPU/task), fetch+complete {:.0} tasks/s ({:.1} us Redis CPU/task), total {:.0} tasks/s",
            per_s(submitted),
            (cpu1 - cpu0) / N as f64,
            per_s(drained),
            (cpu2 - cpu1) / N as f64,
            per_s(submitted + drained),
        );
    }
}
