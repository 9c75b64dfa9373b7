//! The queue's guarantees under failure: dead workers, long tasks, Redis
//! restarts, failing strategies, priorities, shutdown and cancellation.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use stratbox_queue::{CancelState, TaskSpec, TaskStatus};
use stratbox_service::tasks::{
    submit_backtest, submit_backtest_with, submit_backtests, SubmitOptions,
};
use stratbox_store::BacktestDefinition;

use super::queue_backtest::{definition, hourly};
use super::service::{Service, WorkerProc};

const HOUR: i64 = 3600;
const START: i64 = 1_704_067_200;
/// Test workers get fuel for the slow plugin's deliberate work.
pub(super) const FUEL: (&str, &str) = ("STRATBOX_FUEL_PER_BAR", "100000000000");
/// Loop steps per bar of the slow plugin: roughly 1 ms per bar here, so
/// `bars` is about the run time in milliseconds.
const WORK_PER_MS: i64 = 700_000;

pub(super) async fn with_slow_plugin(svc: &Service) -> String {
    svc.store
        .import_candles("SLOW", HOUR, &hourly(20_000, 11))
        .await
        .unwrap();
    svc.put_plugin("hostile/slow").await
}

/// A backtest of the slow plugin that runs for about `millis`.
pub(super) fn slow(sha: &str, millis: i64) -> BacktestDefinition {
    let bars = millis.clamp(20, 20_000);
    let mut def = definition(sha, "SLOW", START, START + (bars - 1) * HOUR);
    def.params.insert("work".into(), WORK_PER_MS.into());
    def.params.insert("period".into(), 7.into());
    def
}

fn noop(priority: i64) -> TaskSpec {
    let mut spec = TaskSpec::new("noop", "{}".into());
    spec.priority = priority;
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_task_is_completed_by_another_once() {
    let svc = Service::start("kill9").await;
    let sha = with_slow_plugin(&svc).await;
    let mut w1 = svc.worker("w1", 1, &[FUEL]);
    let (backtest_id, task) = submit_backtest(&svc.store, &svc.queue, &slow(&sha, 3_000), 5)
        .await
        .unwrap();
    let running = svc
        .wait_status(&task, TaskStatus::Running, Duration::from_secs(30))
        .await;
    assert_eq!(running.worker.as_deref(), Some("w1"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    w1.kill9();
    let _w2 = svc.worker("w2", 1, &[FUEL]);
    let done = svc.wait_final(&task, Duration::from_secs(60)).await;
    assert_eq!(done.status, TaskStatus::Completed, "{done:?}");
    assert_eq!(done.worker.as_deref(), Some("w2"));
    assert_eq!(done.attempts, 2, "one attempt died with w1, one completed");
    let record = svc.store.get_backtest(backtest_id).await.unwrap().unwrap();
    assert!(record.report.is_some());
    let c = svc.queue.counters().await.unwrap();
    assert_eq!(
        (
            c.tasks_submitted,
            c.tasks_completed,
            c.tasks_failed,
            c.active_tasks
        ),
        (1, 1, 0, 0)
    );
    svc.assert_drained().await;
    assert_eq!(svc.queue.stats().await.unwrap().dlq, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_task_on_a_healthy_worker_is_never_taken_by_another() {
    let svc = Service::start("long_task").await;
    let sha = with_slow_plugin(&svc).await;
    // Visibility timeout 3 s; the task runs about 7 s.
    let _w1 = svc.worker("w1", 1, &[FUEL]);
    let _w2 = svc.worker("w2", 1, &[FUEL]);
    let (_, task) = submit_backtest(&svc.store, &svc.queue, &slow(&sha, 7_000), 5)
        .await
        .unwrap();
    let done = svc.wait_final(&task, Duration::from_secs(90)).await;
    assert_eq!(done.status, TaskStatus::Completed, "{done:?}");
    let took = done.finished_at_ms.unwrap() - done.started_at_ms.unwrap();
    assert!(
        took > 4_000,
        "the task must outlive the visibility timeout; took {took} ms"
    );
    assert_eq!(done.attempts, 1, "a second delivery would count an attempt");
    let c = svc.queue.counters().await.unwrap();
    assert_eq!(
        (
            c.tasks_completed,
            c.extra.get("duplicates").copied().unwrap_or(0)
        ),
        (1, 0)
    );
    svc.assert_drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_ride_out_a_redis_restart() {
    let mut svc = Service::start("redis_restart").await;
    let sha = with_slow_plugin(&svc).await;
    let _w1 = svc.worker("w1", 2, &[FUEL]);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Idle workers: Redis goes away and comes back.
    svc.restart_redis(Duration::from_millis(700));
    svc.wait_reconnected().await;
    let (_, quick) = submit_backtest(&svc.store, &svc.queue, &slow(&sha, 100), 5)
        .await
        .unwrap();
    assert_eq!(
        svc.wait_final(&quick, Duration::from_secs(30)).await.status,
        TaskStatus::Completed
    );

    // A task running while Redis restarts, and one submitted just before.
    let (_, long) = submit_backtest(&svc.store, &svc.queue, &slow(&sha, 3_000), 5)
        .await
        .unwrap();
    svc.wait_status(&long, TaskStatus::Running, Duration::from_secs(30))
        .await;
    let (_, queued) = submit_backtest(&svc.store, &svc.queue, &slow(&sha, 100), 5)
        .await
        .unwrap();
    svc.restart_redis(Duration::from_millis(700));
    svc.wait_reconnected().await;
    for task in [&long, &queued] {
        let done = svc.wait_final(task, Duration::from_secs(60)).await;
        assert_eq!(done.status, TaskStatus::Completed, "{done:?}");
    }
    let c = svc.queue.counters().await.unwrap();
    assert_eq!(
        (
            c.tasks_submitted,
            c.tasks_completed,
            c.tasks_failed,
            c.active_tasks
        ),
        (3, 3, 0, 0)
    );
    svc.assert_drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuel_exhaustion_goes_to_the_dlq_after_one_attempt() {
    let svc = Service::start("fuel_dlq").await;
    svc.store
        .import_candles("BTCUSDT", HOUR, &hourly(2_000, 5))
        .await
        .unwrap();
    let sha = svc.put_plugin("hostile/infinite-loop").await;
    let _w1 = svc.worker("w1", 1, &[]);
    let (backtest_id, task) = submit_backtest(
        &svc.store,
        &svc.queue,
        &definition(&sha, "BTCUSDT", START, START + 1_999 * HOUR),
        5,
    )
    .await
    .unwrap();
    let done = svc.wait_final(&task, Duration::from_secs(60)).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert_eq!(done.attempts, 1);
    assert_eq!(done.error_code.as_deref(), Some("fuel_exhausted"));
    let dlq = svc.queue.dlq(10).await.unwrap();
    assert_eq!(dlq.len(), 1);
    let entry = &dlq[0].fields;
    assert_eq!(entry["task_id"], task);
    assert_eq!(entry["reason"], "fuel_exhausted");
    assert_eq!(entry["error_kind"], "permanent");
    assert_eq!(entry["attempts"], "1");
    assert_eq!(entry["worker"], "w1");
    let record = svc.store.get_backtest(backtest_id).await.unwrap().unwrap();
    assert_eq!(record.status.as_str(), "failed");
    let c = svc.queue.counters().await.unwrap();
    assert_eq!((c.tasks_failed, c.tasks_timeout, c.active_tasks), (1, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_is_retried_with_growing_delays_then_dead_lettered() {
    let svc = Service::start("transient").await;
    svc.store
        .import_candles("BTCUSDT", HOUR, &hourly(2_000, 5))
        .await
        .unwrap();
    let sha = svc.put_plugin("hostile/infinite-loop").await;
    // Unlimited fuel: the per-task deadline (a transient error) stops it.
    let _w1 = svc.worker("w1", 1, &[("STRATBOX_FUEL_BASE", "1000000000000000")]);
    let options = SubmitOptions {
        timeout_ms: Some(300),
        ..SubmitOptions::default()
    };
    let started = Instant::now();
    let (_, task) = submit_backtest_with(
        &svc.store,
        &svc.queue,
        &definition(&sha, "BTCUSDT", START, START + 1_999 * HOUR),
        &options,
    )
    .await
    .unwrap();
    let done = svc.wait_final(&task, Duration::from_secs(60)).await;
    assert_eq!(done.status, TaskStatus::Failed);
    assert_eq!(done.attempts, 3);
    assert_eq!(done.error_code.as_deref(), Some("deadline_exceeded"));
    // Each retry waited a jittered time under a doubling ceiling (200 ms
    // base in the test settings): "attempt:delay_ms:code".
    assert_eq!(done.retries.len(), 2, "{:?}", done.retries);
    for (i, retry) in done.retries.iter().enumerate() {
        let parts: Vec<&str> = retry.split(':').collect();
        assert_eq!(parts[0], (i + 1).to_string());
        let delay: u64 = parts[1].parse().unwrap();
        assert!(delay <= 200 << i, "retry {} waited {delay} ms", i + 1);
        assert_eq!(parts[2], "deadline_exceeded");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "three 300 ms attempts"
    );
    let dlq = svc.queue.dlq(10).await.unwrap();
    assert_eq!(dlq[0].fields["reason"], "deadline_exceeded");
    assert_eq!(dlq[0].fields["error_kind"], "timeout");
    assert_eq!(dlq[0].fields["attempts"], "3");
    let c = svc.queue.counters().await.unwrap();
    assert_eq!((c.tasks_failed, c.tasks_timeout, c.active_tasks), (0, 1, 0));
    assert_eq!(c.extra.get("tasks_retried").copied(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dlq_entry_can_be_requeued_and_then_completes() {
    let svc = Service::start("requeue").await;
    svc.store
        .import_candles("BTCUSDT", HOUR, &hourly(1_000, 5))
        .await
        .unwrap();
    let sha = svc.put_plugin("ema-crossover").await;
    let (backtest_id, task) = submit_backtest(
        &svc.store,
        &svc.queue,
        &definition(&sha, "BTCUSDT", START, START + 999 * HOUR),
        5,
    )
    .await
    .unwrap();
    // The plugin disappears before a worker gets to it.
    let record = svc.store.plugin_record_by_sha(&sha).await.unwrap().unwrap();
    assert!(svc.store.delete_plugin(record.strategy_id).await.unwrap());
    let _w1 = svc.worker("w1", 1, &[]);
    let failed = svc.wait_final(&task, Duration::from_secs(30)).await;
    assert_eq!(failed.status, TaskStatus::Failed);
    assert_eq!(failed.error_code.as_deref(), Some("plugin_not_found"));
    let dlq = svc.queue.dlq(10).await.unwrap();
    assert_eq!(dlq.len(), 1);

    svc.put_plugin("ema-crossover").await;
    assert_eq!(svc.queue.requeue(Some(&dlq[0].entry_id)).await.unwrap(), 1);
    let done = svc.wait_final(&task, Duration::from_secs(30)).await;
    assert_eq!(done.status, TaskStatus::Completed, "{done:?}");
    assert_eq!(svc.queue.stats().await.unwrap().dlq, 0);
    let record = svc.store.get_backtest(backtest_id).await.unwrap().unwrap();
    assert_eq!(record.status.as_str(), "completed");
    assert!(record.report.is_some() && record.error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_priority_task_starts_before_waiting_low_ones() {
    let svc = Service::start("priority").await;
    let sha = with_slow_plugin(&svc).await;
    let _w1 = svc.worker("w1", 2, &[FUEL]);
    let mut busy = Vec::new();
    for _ in 0..2 {
        busy.push(
            submit_backtest(&svc.store, &svc.queue, &slow(&sha, 2_000), 5)
                .await
                .unwrap()
                .1,
        );
    }
    for task in &busy {
        svc.wait_status(task, TaskStatus::Running, Duration::from_secs(30))
            .await;
    }
    let low = svc.queue.submit(&vec![noop(1); 100]).await.unwrap();
    let high = svc.queue.submit_one(noop(9)).await.unwrap();
    let high_info = svc.wait_final(&high, Duration::from_secs(60)).await;
    let high_start: i64 = high_info.fields["started_us"].parse().unwrap();
    // Tasks started by one fetch share its server time. When both busy
    // slots free in the same fetch, it takes the high task first, then
    // one low for the other slot: at most one low may share the time.
    let mut same_fetch = 0;
    for task in &low {
        let info = svc.wait_final(task, Duration::from_secs(60)).await;
        assert_eq!(info.status, TaskStatus::Completed);
        let start: i64 = info.fields["started_us"].parse().unwrap();
        assert!(
            high_start <= start,
            "low task {task} started before the high one"
        );
        same_fetch += usize::from(start == high_start);
    }
    assert!(
        same_fetch <= 1,
        "{same_fetch} low tasks started with the high one on 2 slots"
    );
}

/// A one-slot worker whose prefetch budget is far above any run time
/// here, so it holds as many waiting tasks as `prefetch_max` allows
/// (`extra` may set it). One run of `short` first gives it a run time to
/// size its prefetch by (that run also compiles the plugin).
async fn holding_worker(
    svc: &Service,
    short: &BacktestDefinition,
    extra: &[(&str, &str)],
) -> WorkerProc {
    let mut env = vec![FUEL, ("STRATBOX_PREFETCH_BUDGET_US", "3600000000")];
    env.extend_from_slice(extra);
    let worker = svc.worker("w1", 1, &env);
    let (_, first) = submit_backtest(&svc.store, &svc.queue, short, 5)
        .await
        .unwrap();
    svc.wait_final(&first, Duration::from_secs(60)).await;
    worker
}

/// A worker holds short tasks beyond its free slots (the prefetch); a
/// high task it fetches later still starts before the low ones it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_high_task_overtakes_the_low_ones_a_worker_holds() {
    let svc = Service::start("held_priority").await;
    let sha = with_slow_plugin(&svc).await;
    let options = |priority| SubmitOptions {
        priority,
        ..SubmitOptions::default()
    };
    let short = slow(&sha, 50);
    let _w1 = holding_worker(&svc, &short, &[]).await;
    // 30 low ones in one submission, so few end before the high one comes.
    let lows: Vec<String> = submit_backtests(
        &svc.store,
        &svc.queue,
        &vec![short.clone(); 30],
        &options(1),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|(_, task)| task)
    .collect();
    // Every low task is out of Redis's streams: run or held by w1.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = svc.queue.stats().await.unwrap();
        if stats.waiting.values().all(|n| *n == 0) {
            break;
        }
        assert!(Instant::now() < deadline, "w1 did not take the low tasks");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (_, high) = submit_backtest_with(&svc.store, &svc.queue, &short, &options(9))
        .await
        .unwrap();
    let high_done = svc.wait_final(&high, Duration::from_secs(60)).await;
    assert_eq!(high_done.status, TaskStatus::Completed);
    let finished =
        |info: &stratbox_queue::TaskInfo| -> i64 { info.fields["finished_at_ms"].parse().unwrap() };
    let mut after_high = 0;
    for task in &lows {
        let info = svc.wait_final(task, Duration::from_secs(60)).await;
        assert_eq!(info.status, TaskStatus::Completed);
        after_high += usize::from(finished(&info) > finished(&high_done));
    }
    // Runs of about 50 ms on one slot: in fetch order the high task would
    // finish after all of them.
    assert!(
        after_high >= 15,
        "only {after_high} of 30 held low tasks finished after the high one"
    );
}

/// However long its budget, a worker holds at most `prefetch_max` tasks
/// beyond its free slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_holds_at_most_prefetch_max_beyond_its_slots() {
    let svc = Service::start("prefetch_max").await;
    let sha = with_slow_plugin(&svc).await;
    let short = slow(&sha, 30);
    let _w1 = holding_worker(&svc, &short, &[("STRATBOX_PREFETCH_MAX", "8")]).await;
    let tasks: Vec<String> = submit_backtests(
        &svc.store,
        &svc.queue,
        &vec![short.clone(); 40],
        &SubmitOptions::default(),
    )
    .await
    .unwrap()
    .into_iter()
    .map(|(_, task)| task)
    .collect();
    // Delivered and not yet acknowledged: the one running plus those held
    // (plus, for a moment, a finished one whose ack trails the next fetch).
    let mut most = 0;
    loop {
        let stats = svc.queue.stats().await.unwrap();
        let held = stats.pending.values().sum::<u64>();
        if held + stats.waiting.values().sum::<u64>() == 0 {
            break;
        }
        most = most.max(held);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // One running, 8 held, perhaps one whose ack trails; at least half
    // of the 8 held at some point.
    assert!(most <= 10, "held {most} of 40");
    assert!(most > 4, "held only {most}: no prefetch");
    for task in &tasks {
        let info = svc.wait_final(task, Duration::from_secs(60)).await;
        assert_eq!(info.status, TaskStatus::Completed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_low_class_is_not_starved_by_a_stream_of_high_tasks() {
    let svc = Service::start("starvation").await;
    let sha = with_slow_plugin(&svc).await;
    let _w1 = svc.worker("w1", 1, &[FUEL, ("STRATBOX_STARVATION_MS", "1000")]);
    let mut high_def = slow(&sha, 100);
    high_def.name = Some("high".into());
    let mut highs = Vec::new();
    for _ in 0..40 {
        let options = SubmitOptions {
            priority: 9,
            ..SubmitOptions::default()
        };
        highs.push(
            submit_backtest_with(&svc.store, &svc.queue, &high_def, &options)
                .await
                .unwrap()
                .1,
        );
    }
    let low = svc.queue.submit_one(noop(1)).await.unwrap();
    let low_info = svc.wait_final(&low, Duration::from_secs(60)).await;
    let low_start: i64 = low_info.fields["started_us"].parse().unwrap();
    let mut last_high = 0i64;
    for task in &highs {
        let info = svc.wait_final(task, Duration::from_secs(60)).await;
        last_high = last_high.max(info.fields["started_us"].parse().unwrap());
    }
    let waited = low_start - low_info.fields["created_us"].parse::<i64>().unwrap();
    assert!(
        low_start < last_high,
        "the low task waited for every high one"
    );
    assert!(
        waited >= 900_000,
        "it was served by age, after about 1 s; waited {waited} us"
    );
}

/// Worker `w1` with the given grace period runs a slow backtest of about
/// `millis`; SIGTERM arrives while it runs. Returns the task id, how the
/// worker exited, and the worker (for its log).
async fn sigterm_while_running(
    svc: &Service,
    grace_ms: &str,
    millis: i64,
) -> (String, std::process::ExitStatus, WorkerProc) {
    let sha = with_slow_plugin(svc).await;
    let mut w1 = svc.worker("w1", 1, &[FUEL, ("STRATBOX_GRACE_PERIOD_MS", grace_ms)]);
    let (_, task) = submit_backtest(&svc.store, &svc.queue, &slow(&sha, millis), 5)
        .await
        .unwrap();
    svc.wait_status(&task, TaskStatus::Running, Duration::from_secs(30))
        .await;
    // The task hash says `running` as soon as the fetch script ran; the
    // worker holds the task once the reply is in, and says so in its
    // heartbeat. A SIGTERM in between returns the task to the queue (it
    // never started here), which is not what these tests are about.
    let started = Instant::now();
    while !svc
        .queue
        .workers()
        .await
        .unwrap()
        .get("w1")
        .is_some_and(|beat| beat.contains(&task))
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "w1's heartbeat never listed {task}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    w1.signal(Signal::SIGTERM);
    let status = w1.wait_exit(Duration::from_secs(30));
    (task, status, w1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_task_finish_then_exits_0_and_leaves() {
    let svc = Service::start("sigterm").await;
    let (task, status, w1) = sigterm_while_running(&svc, "20000", 1_500).await;
    assert!(status.success(), "{status:?}\n{}", w1.log_text());
    let done = svc.queue.task(&task).await.unwrap().unwrap();
    assert_eq!(
        done.status,
        TaskStatus::Completed,
        "finished within the grace period"
    );
    assert!(svc.queue.workers().await.unwrap().is_empty());
    let consumers = svc.consumers().await;
    assert!(!consumers.iter().any(|c| c == "w1"), "{consumers:?}");
    svc.assert_drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_outliving_the_grace_period_returns_to_the_queue() {
    let svc = Service::start("grace").await;
    let (task, status, w1) = sigterm_while_running(&svc, "300", 4_000).await;
    assert!(status.success(), "{status:?}\n{}", w1.log_text());
    let back = svc.queue.task(&task).await.unwrap().unwrap();
    assert_eq!(back.status, TaskStatus::Queued, "{back:?}");
    assert_eq!(back.attempts, 0, "a shutdown does not use up an attempt");
    let _w2 = svc.worker("w2", 1, &[FUEL]);
    let done = svc.wait_final(&task, Duration::from_secs(60)).await;
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.worker.as_deref(), Some("w2"));
    svc.assert_drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_and_running_tasks_can_be_cancelled() {
    let svc = Service::start("cancel").await;
    let sha = with_slow_plugin(&svc).await;
    let (queued_backtest, queued) = submit_backtest(&svc.store, &svc.queue, &slow(&sha, 100), 5)
        .await
        .unwrap();
    assert_eq!(
        svc.queue.cancel(&queued).await.unwrap(),
        CancelState::Cancelled
    );
    let record = svc
        .store
        .get_backtest(queued_backtest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status.as_str(), "cancelled");

    let _w1 = svc.worker("w1", 1, &[FUEL]);
    let (running_backtest, running) =
        submit_backtest(&svc.store, &svc.queue, &slow(&sha, 20_000), 5)
            .await
            .unwrap();
    svc.wait_status(&running, TaskStatus::Running, Duration::from_secs(30))
        .await;
    // Progress reaches the record while it runs: the worker writes it every
    // 500 ms, the engine moves it after each strategy call, and this plugin
    // walks a whole 8192-bar window (about 8 s here) in its first call.
    let watching = Instant::now();
    loop {
        let record = svc
            .store
            .get_backtest(running_backtest)
            .await
            .unwrap()
            .unwrap();
        if record.progress > 0.0 && record.progress < 1.0 {
            break;
        }
        assert!(
            watching.elapsed() < Duration::from_secs(40),
            "no progress: {}",
            record.progress
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        svc.queue.cancel(&running).await.unwrap(),
        CancelState::Cancelling
    );
    let asked = Instant::now();
    let done = svc.wait_final(&running, Duration::from_secs(10)).await;
    assert_eq!(done.status, TaskStatus::Cancelled);
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "stopped at the next epoch tick"
    );
    let record = svc
        .store
        .get_backtest(running_backtest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status.as_str(), "cancelled");

    // The cancelled queued task never ran.
    let q = svc.queue.task(&queued).await.unwrap().unwrap();
    assert_eq!((q.status, q.attempts), (TaskStatus::Cancelled, 0));
    assert_eq!(
        svc.queue.cancel(&queued).await.unwrap(),
        CancelState::AlreadyFinished(TaskStatus::Cancelled)
    );
    svc.assert_drained().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_arriving_during_shutdown_is_not_stranded() {
    let svc = Service::start("shutdown_race").await;
    let mut w1 = svc.worker("w1", 1, &[]);
    // Idle: w1 sits in a blocking read when it is told to stop.
    tokio::time::sleep(Duration::from_millis(800)).await;
    w1.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let task = svc.queue.submit_one(noop(5)).await.unwrap();
    let status = w1.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", w1.log_text());
    // Whatever w1's open read took went back to the stream when it left:
    // the next worker runs it at once, not after the visibility timeout.
    let _w2 = svc.worker("w2", 1, &[]);
    let started = Instant::now();
    let done = svc.wait_final(&task, Duration::from_secs(30)).await;
    assert_eq!(done.status, TaskStatus::Completed);
    assert!(
        started.elapsed() < Duration::from_millis(2_500),
        "waited {:?} (the visibility timeout is 3 s)",
        started.elapsed()
    );
    svc.assert_drained().await;
}

/// XGROUP DESTROY while two worker processes run slow backtests and two
/// more wait: the group comes back with the running ones still claimed
/// by their workers, so none is delivered a second time (a delivery
/// counts an attempt) and each completes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroyed_consumer_group_delivers_no_running_task_again() {
    let svc = Service::start("group_destroyed").await;
    let sha = with_slow_plugin(&svc).await;
    let _w1 = svc.worker("w1", 2, &[FUEL]);
    let _w2 = svc.worker("w2", 2, &[FUEL]);
    while svc.queue.workers().await.unwrap().len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut defs = vec![slow(&sha, 2_500); 4];
    defs.extend([slow(&sha, 100), slow(&sha, 100)]);
    let tasks: Vec<String> =
        submit_backtests(&svc.store, &svc.queue, &defs, &SubmitOptions::default())
            .await
            .unwrap()
            .into_iter()
            .map(|(_, task)| task)
            .collect();
    for task in &tasks[..4] {
        svc.wait_status(task, TaskStatus::Running, Duration::from_secs(30))
            .await;
    }
    let mut conn = svc.queue.connection();
    let destroyed: i64 = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg(svc.queue.keys().stream(stratbox_queue::Class::Normal))
        .arg(stratbox_queue::GROUP)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(destroyed, 1);
    for task in &tasks {
        let done = svc.wait_final(task, Duration::from_secs(90)).await;
        assert_eq!(done.status, TaskStatus::Completed, "{done:?}");
        assert_eq!(done.attempts, 1, "delivered again: {done:?}");
    }
    let c = svc.queue.counters().await.unwrap();
    assert_eq!((c.tasks_completed, c.active_tasks), (6, 0), "{c:?}");
    assert_eq!(c.extra.get("duplicates").copied().unwrap_or(0), 0, "{c:?}");
    svc.assert_drained().await;
}
