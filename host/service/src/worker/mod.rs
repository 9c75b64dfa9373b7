//! `stratbox worker`: N task slots in one process, fed by one queue
//! consumer. The fetch loop (async) takes tasks, batched when they are
//! short, and hands them to N slot threads (plain OS threads: strategy runs
//! are CPU work and never touch the async runtime's threads). One
//! completer writes outcomes back in batches. Side loops keep claims and
//! the heartbeat alive, promote due retries, and listen for cancellations.
//!
//! A slot thread takes its next task from the held ones (`jobs`, highest
//! class first) without waking anyone while work is queued, so a stream of
//! tiny tasks costs no thread switch per task.

mod jobs;
mod state;
#[cfg(test)]
mod tests;

use crate::tasks::{TaskContext, Tasks};
use jobs::JobQueue;
use state::{Hold, Slot, State};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stratbox_queue::consumer::Held;
use stratbox_queue::{Class, Consumer, Delivery, Outcome, Queue, QueueConfig, TaskError};
use tokio::sync::{mpsc, Notify};
use tracing::{debug, info, warn};

/// Set by a supervisor (`stratbox demo`, `stratbox autoscale`) on the
/// processes it starts: its pid, so they stop when it dies.
pub const PARENT_PID_ENV: &str = "STRATBOX_PARENT_PID";

/// Settings of one worker process.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub redis_url: String,
    pub prefix: String,
    /// Tasks run at once.
    pub slots: usize,
    pub queue: QueueConfig,
    /// Consumer name; unique per process by default.
    pub name: Option<String>,
}

/// What a worker did, logged at exit.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WorkerSummary {
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
    pub cancelled: u64,
    /// Returned to the queue at shutdown.
    pub released: u64,
}

/// Longest wait between attempts to reach a Redis that is down.
const REDIS_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// How often running tasks' progress is written.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(500);

/// What a worker's slots run: the task kinds ([`Tasks`]), or a test's.
pub trait Runner: Send + Sync + 'static {
    /// Runs one delivery to its result on a slot thread (see [`Tasks::run`]).
    fn run(
        &self,
        rt: &tokio::runtime::Handle,
        delivery: &Delivery,
        ctx: &TaskContext,
    ) -> Result<String, TaskError>;
}

impl Runner for Tasks {
    fn run(
        &self,
        rt: &tokio::runtime::Handle,
        delivery: &Delivery,
        ctx: &TaskContext,
    ) -> Result<String, TaskError> {
        Tasks::run(self, rt, delivery, ctx)
    }
}

/// Runs until `shutdown` resolves, then drains gracefully: no new tasks,
/// running ones get the grace period, the rest go back to the queue.
pub async fn run<R: Runner>(
    config: WorkerConfig,
    tasks: Arc<R>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<WorkerSummary> {
    anyhow::ensure!(config.slots > 0, "--workers must be at least 1");
    let queue = Queue::connect(&config.redis_url, &config.prefix, config.queue.clone()).await?;
    let name = config.name.clone().unwrap_or_else(Consumer::unique_name);
    let consumer = Arc::new(Consumer::new(queue.clone(), &config.redis_url, name).await?);
    info!(
        consumer = consumer.name(),
        slots = config.slots,
        "worker started"
    );

    let shared = Arc::new(Shared {
        state: Mutex::new(State::default()),
        slot_freed: Notify::new(),
        wake_at_or_below: AtomicUsize::new(usize::MAX),
        stopping: AtomicBool::new(false),
        config: config.clone(),
        started_at_ms: stratbox_queue::now_ms(),
    });
    let (done_tx, done_rx) = mpsc::unbounded_channel::<(Held, Outcome)>();
    let completer = tokio::spawn(completer(consumer.clone(), shared.clone(), done_rx));
    let side = [
        tokio::spawn(keepalive_loop(consumer.clone(), shared.clone())),
        tokio::spawn(promote_loop(queue.clone(), shared.clone())),
        tokio::spawn(cancel_listener(queue.clone(), shared.clone())),
        tokio::spawn(progress_loop(queue.clone(), shared.clone())),
    ];

    let jobs = Arc::new(JobQueue::<Job>::new(config.queue.starvation_age));
    let runtime = tokio::runtime::Handle::current();
    let mut slots = Vec::with_capacity(config.slots);
    for i in 0..config.slots {
        let (shared, tasks, jobs, done, rt) = (
            shared.clone(),
            tasks.clone(),
            jobs.clone(),
            done_tx.clone(),
            runtime.clone(),
        );
        slots.push(
            std::thread::Builder::new()
                .name(format!("stratbox-slot-{i}"))
                .spawn(move || slot_thread(&shared, &*tasks, &jobs, &done, &rt))?,
        );
    }

    let mut shutdown = std::pin::pin!(shutdown);
    let fetching = fetch_loop(&consumer, &shared, &jobs);
    tokio::select! {
        result = fetching => result?,
        () = &mut shutdown => info!("shutdown requested: taking no new tasks"),
    }
    shared.stopping.store(true, Ordering::SeqCst);
    shared.wake_at_or_below.store(usize::MAX, Ordering::SeqCst);
    drain(&shared).await;
    jobs.close();
    drop(done_tx);
    tokio::task::spawn_blocking(move || {
        for slot in slots {
            let _ = slot.join();
        }
    })
    .await?;
    let summary = completer.await.unwrap_or_default();
    for task in side {
        task.abort();
    }
    match consumer.leave().await {
        Ok(n) if n > 0 => info!(returned = n, "returned held tasks to the queue"),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "could not leave the consumer group; the sweeper will reclaim"),
    }
    info!(?summary, "worker stopped");
    Ok(summary)
}

struct Shared {
    state: Mutex<State>,
    slot_freed: Notify,
    /// A slot that finishes with at most this many tasks held notifies
    /// `slot_freed`: the level at which the fetch loop wants to refill. A
    /// wake-up per finished task would cost a thread switch per tiny task.
    wake_at_or_below: AtomicUsize,
    stopping: AtomicBool,
    config: WorkerConfig,
    started_at_ms: i64,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One fetched task on its way to a slot thread.
struct Job {
    delivery: Delivery,
    slot: Slot,
    /// Fetched beyond the free slots, to wait for one. Only these go
    /// back on shutdown; a job fetched for a free slot starts at once
    /// (unless a higher class overtakes it).
    prefetched: bool,
}

async fn fetch_loop(
    consumer: &Consumer,
    shared: &Arc<Shared>,
    jobs: &JobQueue<Job>,
) -> anyhow::Result<()> {
    let qc = &shared.config.queue;
    let mut last_sweep: Option<Instant> = None;
    let mut backoff = Duration::from_millis(50);
    loop {
        if shared.stopping.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Held = running plus handed over and not yet started.
        let (held, estimate) = {
            let state = shared.state();
            (state.in_flight, state.average_run)
        };
        let extra = prefetch(qc.prefetch_budget, estimate, qc.prefetch_max);
        let capacity = shared.config.slots + extra;
        let want = capacity.saturating_sub(held).min(qc.fetch_batch);
        // With every slot given work, refill only once half the prefetch
        // room (at most a fetch) is free: fewer, larger fetches (each
        // `fetch.lua` call costs Redis a dozen calls besides its tasks),
        // while the held half keeps the slots busy.
        let all_slots_busy = held >= shared.config.slots;
        let refill = extra.div_ceil(2).min(qc.fetch_batch);
        if want == 0 || (all_slots_busy && want < refill) {
            // Woken once `refill` tasks' room is free (one, without
            // prefetch). The level is published before `held` is read
            // again, so a slot finishing in between either sees it or is
            // seen here.
            let level = capacity - refill.max(1);
            shared.wake_at_or_below.store(level, Ordering::SeqCst);
            if shared.state().in_flight > level {
                shared.slot_freed.notified().await;
            }
            continue;
        }
        let reclaim = last_sweep.is_none_or(|t| t.elapsed() >= qc.sweep_interval);
        let mut fetched = match consumer.fetch(want, reclaim).await {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "fetch failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(REDIS_BACKOFF_MAX);
                continue;
            }
        };
        if reclaim {
            last_sweep = Some(Instant::now());
        }
        backoff = Duration::from_millis(50);
        if fetched.is_empty() && held < shared.config.slots {
            let free = shared.config.slots - held;
            fetched = match consumer.fetch_blocking(free, qc.block).await {
                Ok(d) => d,
                Err(e) => {
                    warn!(error = %e, "blocking fetch failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(REDIS_BACKOFF_MAX);
                    continue;
                }
            };
        } else if fetched.is_empty() {
            // All slots busy and nothing more to prefetch: wait for one.
            shared.wake_at_or_below.store(usize::MAX, Ordering::SeqCst);
            shared.slot_freed.notified().await;
            continue;
        }
        if !fetched.is_empty() {
            debug!(n = fetched.len(), "fetched");
        }
        let mut free = shared.config.slots.saturating_sub(held);
        for delivery in fetched {
            let slot = match shared.state().hold(&delivery) {
                Hold::Run(slot) => slot,
                Hold::Running => {
                    warn!(
                        task = delivery.task_id,
                        "delivered again while running here; not run twice"
                    );
                    continue;
                }
                Hold::Waiting => {
                    warn!(
                        task = delivery.task_id,
                        "delivered again while a copy runs here; waits for it to stop"
                    );
                    continue;
                }
            };
            let prefetched = free == 0;
            free = free.saturating_sub(1);
            let class = Class::from_priority(delivery.priority);
            jobs.push(
                class,
                Job {
                    delivery,
                    slot,
                    prefetched,
                },
            );
        }
    }
}

/// Extra deliveries worth holding beyond the free slots: about
/// `budget` of work at the recent average run time.
fn prefetch(budget: Duration, average_run: Option<Duration>, cap: usize) -> usize {
    match average_run {
        Some(avg) if !avg.is_zero() => ((budget.as_nanos() / avg.as_nanos()) as usize).min(cap),
        Some(_) => cap,
        None => 0,
    }
}

/// One task slot: runs jobs one after another until the queue closes.
fn slot_thread<R: Runner>(
    shared: &Shared,
    tasks: &R,
    jobs: &JobQueue<Job>,
    done: &mpsc::UnboundedSender<(Held, Outcome)>,
    rt: &tokio::runtime::Handle,
) {
    loop {
        let Some(Job {
            delivery,
            slot,
            prefetched,
        }) = jobs.pop()
        else {
            return;
        };
        let began = Instant::now();
        let outcome = if prefetched && shared.stopping.load(Ordering::SeqCst) {
            // Held for a busy slot and not started when shutdown began.
            Outcome::Released
        } else if delivery.attempt > delivery.max_attempts {
            // Delivered again and again: each worker running it died.
            Outcome::Failed(TaskError::permanent(
                "worker_lost",
                format!(
                    "delivered {} times (limit {}); the workers running it stopped without finishing",
                    delivery.attempt, delivery.max_attempts
                ),
            ))
        } else if slot.cancel.is_cancelled() {
            cancelled_outcome(&slot)
        } else {
            let ctx = TaskContext {
                cancel: slot.cancel.clone(),
                timeout: Duration::from_millis(delivery.timeout_ms.max(1)),
                progress: slot.progress.clone(),
            };
            let result = tasks.run(rt, &delivery, &ctx);
            decide(&shared.config.queue, &delivery, &slot, result)
        };
        let ended = matches!(
            outcome,
            Outcome::Completed { .. } | Outcome::Failed(_) | Outcome::Cancelled
        );
        let (finished, held) = {
            let mut state = shared.state();
            let finished = state.finish(&delivery.task_id, began.elapsed(), ended);
            (finished, state.in_flight)
        };
        if held <= shared.wake_at_or_below.load(Ordering::SeqCst) {
            shared.slot_freed.notify_one();
        }
        if !finished.lost {
            let _ = done.send((Held::from(&delivery), outcome));
        }
        // After the outcome, so the task has ended when this is written.
        if let Some(duplicate) = finished.duplicate {
            let _ = done.send((duplicate, Outcome::Duplicate));
        }
        if let Some((delivery, slot)) = finished.next {
            let class = Class::from_priority(delivery.priority);
            // Prefetched: on shutdown it goes back rather than start.
            let prefetched = true;
            jobs.push(
                class,
                Job {
                    delivery,
                    slot,
                    prefetched,
                },
            );
        }
    }
}

fn cancelled_outcome(slot: &Slot) -> Outcome {
    if slot.shutdown.load(Ordering::SeqCst) {
        Outcome::Released
    } else {
        Outcome::Cancelled
    }
}

/// Result to outcome: cancellations first, then retry while attempts and
/// the error class allow, else the dead-letter stream.
fn decide(
    config: &QueueConfig,
    delivery: &Delivery,
    slot: &Slot,
    result: Result<String, TaskError>,
) -> Outcome {
    match result {
        Ok(result) => Outcome::Completed { result },
        Err(_) if slot.cancel.is_cancelled() => cancelled_outcome(slot),
        Err(error) if error.transient && delivery.attempt < delivery.max_attempts => {
            let unit: f64 = rand::random();
            let delay_ms = config.retry_delay(delivery.attempt, unit).as_millis() as u64;
            Outcome::Retry { error, delay_ms }
        }
        Err(error) => Outcome::Failed(error),
    }
}

/// Writes outcomes in batches: whatever has queued up while the previous
/// batch was in flight goes in the next round trip. A batch that fails is
/// retried until Redis answers; its entries stay pending meanwhile, so
/// nothing is lost even if this process dies.
async fn completer(
    consumer: Arc<Consumer>,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<(Held, Outcome)>,
) -> WorkerSummary {
    let mut summary = WorkerSummary::default();
    let mut batch = Vec::new();
    let limit = shared.config.queue.fetch_batch * 2;
    let linger = shared.config.queue.completion_linger;
    while rx.recv_many(&mut batch, limit).await > 0 {
        // More outcomes are likely on their way when tasks are short:
        // gather them for one round trip (bounded by the linger).
        if batch.len() < limit && !linger.is_zero() {
            let deadline = tokio::time::Instant::now() + linger;
            while batch.len() < limit {
                let room = limit - batch.len();
                match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        let mut backoff = Duration::from_millis(20);
        let mut tries = 0u32;
        loop {
            match consumer.complete(&batch).await {
                Ok(_) => break,
                Err(e) => {
                    tries += 1;
                    // Stopping and Redis gone for good: the entries stay
                    // pending and another worker reclaims them.
                    if shared.stopping.load(Ordering::SeqCst) && tries > 20 {
                        warn!(error = %e, n = batch.len(), "giving up writing outcomes at shutdown");
                        break;
                    }
                    warn!(error = %e, n = batch.len(), "writing outcomes failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(REDIS_BACKOFF_MAX);
                }
            }
        }
        for (held, outcome) in batch.drain(..) {
            match outcome {
                Outcome::Completed { .. } => summary.completed += 1,
                Outcome::Failed(e) => {
                    summary.failed += 1;
                    info!(
                        task = held.task_id,
                        code = e.code,
                        "task failed: {}",
                        e.message
                    );
                }
                Outcome::Retry { error, delay_ms } => {
                    summary.retried += 1;
                    info!(
                        task = held.task_id,
                        code = error.code,
                        delay_ms,
                        "task will be retried"
                    );
                }
                Outcome::Cancelled => summary.cancelled += 1,
                Outcome::Released => summary.released += 1,
                Outcome::Duplicate => {}
            }
        }
    }
    summary
}

/// Waits up to the grace period for running tasks, then stops the rest;
/// their outcome is `Released` (back to the queue, attempt not counted).
async fn drain(shared: &Arc<Shared>) {
    let grace = shared.config.queue.grace_period;
    let deadline = Instant::now() + grace;
    loop {
        let running = shared.state().in_flight;
        if running == 0 {
            return;
        }
        if Instant::now() >= deadline {
            break;
        }
        let wait = deadline.saturating_duration_since(Instant::now());
        let _ = tokio::time::timeout(
            wait.min(Duration::from_millis(50)),
            shared.slot_freed.notified(),
        )
        .await;
    }
    let stopped = shared.state().stop_all_for_shutdown();
    warn!(
        stopped,
        ?grace,
        "grace period over: returning running tasks to the queue"
    );
    while shared.state().in_flight > 0 {
        let _ = tokio::time::timeout(Duration::from_millis(50), shared.slot_freed.notified()).await;
    }
}

async fn keepalive_loop(consumer: Arc<Consumer>, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.queue.keepalive);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (held, running): (Vec<Held>, Vec<String>) = {
            let state = shared.state();
            (state.held(), state.running_ids())
        };
        let heartbeat = serde_json::json!({
            "consumer": consumer.name(),
            "pid": std::process::id(),
            "slots": shared.config.slots,
            "started_at_ms": shared.started_at_ms,
            "seen_at_ms": stratbox_queue::now_ms(),
            "running": running,
            "version": env!("CARGO_PKG_VERSION"),
        })
        .to_string();
        match consumer.keepalive(&held, &heartbeat).await {
            Ok(report) => {
                let mut state = shared.state();
                for id in &report.cancel {
                    state.cancel(id);
                }
                for id in &report.lost {
                    warn!(
                        task = id,
                        "task was reclaimed by another worker; stopping our copy"
                    );
                    state.lose(id);
                }
            }
            Err(e) => warn!(error = %e, "keepalive failed"),
        }
        match consumer.prune_dead().await {
            Ok(0) => {}
            Ok(n) => info!(removed = n, "removed dead consumers from the group"),
            Err(e) => debug!(error = %e, "pruning dead consumers failed"),
        }
    }
}

async fn promote_loop(queue: Queue, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(shared.config.queue.promote_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = queue.promote_due().await {
            debug!(error = %e, "promoting retries failed");
        }
    }
}

async fn progress_loop(queue: Queue, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(PROGRESS_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let changed = shared.state().progress_changes();
        if let Err(e) = queue.report_progress(&changed).await {
            debug!(error = %e, "writing progress failed");
        }
    }
}

/// Cancel requests arrive on a pub/sub channel (the keepalive also polls,
/// in case a message is missed while reconnecting).
async fn cancel_listener(queue: Queue, shared: Arc<Shared>) {
    use futures_util::StreamExt;
    let channel = queue.keys().cancel_channel();
    let mut backoff = Duration::from_millis(50);
    loop {
        let subscribed = async {
            // The same TLS certificates as every other connection.
            let client = stratbox_redis::connection::client(&shared.config.redis_url)?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, anyhow::Error>(pubsub)
        }
        .await;
        match subscribed {
            Ok(pubsub) => {
                backoff = Duration::from_millis(50);
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    if let Ok(task_id) = msg.get_payload::<String>() {
                        shared.state().cancel(&task_id);
                    }
                }
            }
            Err(e) => debug!(error = %e, "cancel channel unavailable"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(REDIS_BACKOFF_MAX);
    }
}

/// Shared by the CLI: resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
