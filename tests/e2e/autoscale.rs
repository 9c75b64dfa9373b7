//! `stratbox autoscale` against a real Redis and real worker processes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stratbox_service::tasks::submit_backtests;

use super::queue_recovery::{slow, with_slow_plugin, FUEL};
use super::service::{Service, FAST_ENV};

struct Autoscaler(Child);

impl Drop for Autoscaler {
    fn drop(&mut self) {
        // Graceful, so its workers go too.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}

/// `stratbox autoscale ARGS` on the service's Redis, with the fast
/// timings and `env`, logging to `autoscale.log`.
fn start_autoscaler(svc: &Service, args: &[&str], env: &[(&str, &str)]) -> Autoscaler {
    let log = std::fs::File::create(svc.dir.join("autoscale.log")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stratbox"));
    cmd.arg("autoscale")
        .args(args)
        .env("REDIS_URL", svc.url())
        .env("STRATBOX_PREFIX", &svc.prefix)
        .env("STRATBOX_CACHE_DIR", svc.dir.join("cache"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in FAST_ENV.iter().chain(env) {
        cmd.env(k, v);
    }
    Autoscaler(cmd.spawn().unwrap())
}

/// Worker pids with a live heartbeat.
async fn worker_pids(svc: &Service) -> Vec<u64> {
    let mut pids: Vec<u64> = svc
        .queue
        .workers()
        .await
        .unwrap()
        .values()
        .filter_map(|json| serde_json::from_str::<serde_json::Value>(json).ok())
        .filter_map(|beat| beat["pid"].as_u64())
        .collect();
    pids.sort_unstable();
    pids
}

/// The autoscaler's own reading of itself, from Redis.
async fn scaler(svc: &Service) -> stratbox_service::autoscale::AutoscalerStats {
    let mut conn = svc.queue.connection();
    stratbox_service::autoscale::read_stats(&mut conn, &svc.prefix)
        .await
        .unwrap()
}

async fn wait_for(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_scales_to_max_then_back_to_min_and_a_killed_worker_is_replaced() {
    let svc = Service::start("autoscale").await;
    let sha = with_slow_plugin(&svc).await;
    let _autoscaler = start_autoscaler(
        &svc,
        &[
            "--min",
            "1",
            "--max",
            "3",
            "--slots",
            "1",
            "--target-wait-ms",
            "400",
            "--up-cooldown-ms",
            "300",
            "--down-cooldown-ms",
            "300",
            "--quiet-ms",
            "1500",
            "--interval-ms",
            "100",
            "--restart-backoff-ms",
            "200",
        ],
        &[FUEL],
    );
    wait_for("the first worker", Duration::from_secs(30), async || {
        worker_pids(&svc).await.len() == 1
    })
    .await;

    // A burst: 24 runs of ~250 ms is 6 s of work for one slot, far past
    // the 0.4 s target.
    let definitions: Vec<_> = (0..24).map(|_| slow(&sha, 250)).collect();
    let submitted = submit_backtests(&svc.store, &svc.queue, &definitions, &Default::default())
        .await
        .unwrap();
    wait_for("three workers", Duration::from_secs(30), async || {
        worker_pids(&svc).await.len() == 3
    })
    .await;
    let stats = scaler(&svc).await;
    assert_eq!(stats.desired, Some(3));
    assert!(
        stats.decisions.keys().any(|(action, reason)| action == "up"
            && (reason == "oldest_wait" || reason == "drain_time")),
        "{stats:?}"
    );

    // Drained, then quiet: back to one, one worker at a time.
    for (backtest_id, _) in &submitted {
        let id = *backtest_id;
        wait_for("every backtest", Duration::from_secs(60), async || {
            let record = svc.store.get_backtest(id).await.unwrap().unwrap();
            record.status.as_str() == "completed"
        })
        .await;
    }
    wait_for("one worker again", Duration::from_secs(30), async || {
        scaler(&svc).await.desired == Some(1) && worker_pids(&svc).await.len() == 1
    })
    .await;
    let stats = scaler(&svc).await;
    assert_eq!(
        stats
            .decisions
            .get(&("down".to_string(), "quiet".to_string())),
        Some(&2),
        "{stats:?}"
    );
    // Nothing lost, nothing run twice: scale-down waited for quiet, so no
    // running task was handed back.
    let counters = svc.queue.counters().await.unwrap();
    assert_eq!(counters.tasks_completed, 24, "{counters:?}");
    assert_eq!(counters.tasks_failed + counters.tasks_timeout, 0);
    assert_eq!(
        counters.extra.get("tasks_released").copied().unwrap_or(0),
        0
    );
    assert_eq!(counters.extra.get("duplicates").copied().unwrap_or(0), 0);
    assert_eq!(svc.queue.stats().await.unwrap().dlq, 0);

    // kill -9 of the last worker: replaced after the backoff.
    let victim = worker_pids(&svc).await[0];
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for(
        "a replacement worker",
        Duration::from_secs(30),
        async || {
            let pids = worker_pids(&svc).await;
            pids.iter().any(|p| *p != victim)
        },
    )
    .await;
    let stats = scaler(&svc).await;
    assert_eq!(
        stats
            .decisions
            .get(&("restart".to_string(), "crashed".to_string())),
        Some(&1),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_stop_gracefully_when_the_autoscaler_is_killed() {
    let svc = Service::start("autoscale_killed").await;
    let mut autoscaler = start_autoscaler(
        &svc,
        &[
            "--min",
            "2",
            "--max",
            "2",
            "--slots",
            "1",
            "--interval-ms",
            "100",
        ],
        &[],
    );
    wait_for("two workers", Duration::from_secs(30), async || {
        worker_pids(&svc).await.len() == 2
    })
    .await;
    let workers = worker_pids(&svc).await;

    autoscaler.0.kill().unwrap();
    autoscaler.0.wait().unwrap();
    // Each worker gets SIGTERM from the kernel, drains, removes its
    // consumer and heartbeat, and exits; none is left as an orphan.
    wait_for(
        "the workers to leave",
        Duration::from_secs(20),
        async || worker_pids(&svc).await.is_empty() && svc.consumers().await.is_empty(),
    )
    .await;
    // A worker leaves the group and deletes its heartbeat before its
    // process ends (threads joined, sandbox pool unmapped): it gets a
    // moment to finish exiting.
    for pid in workers {
        let exiting = Instant::now();
        loop {
            // Gone, or a zombie left for init to reap: not running.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
            if matches!(state, None | Some("Z" | "X")) {
                break;
            }
            assert!(
                exiting.elapsed() < Duration::from_secs(10),
                "worker {pid} still runs 10 s after leaving: {stat}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
