//! `stratbox autoscale`: keeps between `min` and `max` worker processes on
//! this machine, against an SLA on how long tasks wait. Decisions come
//! from [`policy`]; this module runs the processes: starts them, stops
//! them with SIGTERM (the worker's graceful drain), replaces crashed ones
//! with backoff, and records every decision in Redis for `/metrics`.

pub mod policy;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use redis::aio::ConnectionManager;

use policy::{Decision, Policy, PolicyState, Reading};
use stratbox_queue::Queue;

/// How the worker processes are started.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    pub exe: PathBuf,
    /// Arguments after `worker` (e.g. `--workers 2`).
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct AutoscaleConfig {
    pub policy: Policy,
    /// How often the queue is read and a decision made.
    pub interval: Duration,
    /// First wait before restarting a crashed worker; doubles per crash
    /// in a row, up to `max_restart_backoff`.
    pub restart_backoff: Duration,
    pub max_restart_backoff: Duration,
    /// Time stopping workers get before SIGKILL (their grace period plus
    /// a margin).
    pub stop_timeout: Duration,
}

/// `{prefix}:autoscaler`: `workers`, `desired`, `updated_ms`;
/// `{prefix}:autoscaler:decisions`: counts by `{action}:{reason}`.
pub fn state_key(prefix: &str) -> String {
    format!("{prefix}:autoscaler")
}

pub fn decisions_key(prefix: &str) -> String {
    format!("{prefix}:autoscaler:decisions")
}

/// What `/metrics` shows of the autoscalers sharing a prefix.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AutoscalerStats {
    pub workers: Option<u64>,
    pub desired: Option<u64>,
    /// `(action, reason) -> count`.
    pub decisions: BTreeMap<(String, String), u64>,
}

pub async fn read_stats(
    conn: &mut ConnectionManager,
    prefix: &str,
) -> redis::RedisResult<AutoscalerStats> {
    let (state, decisions): (BTreeMap<String, u64>, BTreeMap<String, u64>) = redis::pipe()
        .hgetall(state_key(prefix))
        .hgetall(decisions_key(prefix))
        .query_async(conn)
        .await?;
    Ok(AutoscalerStats {
        workers: state.get("workers").copied(),
        desired: state.get("desired").copied(),
        decisions: decisions
            .into_iter()
            .filter_map(|(field, n)| {
                let (action, reason) = field.split_once(':')?;
                Some(((action.to_string(), reason.to_string()), n))
            })
            .collect(),
    })
}

struct Worker {
    child: Child,
    started: Instant,
}

/// Runs until `shutdown` resolves, then stops every worker it started.
pub async fn run(
    config: AutoscaleConfig,
    command: WorkerCommand,
    queue: Queue,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    config.policy.check().map_err(anyhow::Error::msg)?;
    let prefix = queue.keys().prefix().to_string();
    let mut conn = queue.connection();
    let mut running: Vec<Worker> = Vec::new();
    let mut stopping: Vec<(Child, Instant)> = Vec::new();
    let mut desired = config.policy.min;
    let mut state = PolicyState::default();
    let mut crashes_in_a_row = 0u32;
    let mut restart_at: Option<Instant> = None;
    let mut last_finished: Option<(u64, Instant)> = None;
    let mut drain_per_sec = 0.0f64;
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    tracing::info!(
        min = config.policy.min,
        max = config.policy.max,
        target_wait_ms = config.policy.target_wait.as_millis() as u64,
        "autoscaler started"
    );
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {}
        }
        let now = Instant::now();
        // Reap: stopped ones are gone; any other exit is a crash.
        stopping.retain_mut(|(child, _)| !matches!(child.try_wait(), Ok(Some(_))));
        let mut crashed = Vec::new();
        running.retain_mut(|w| match w.child.try_wait() {
            Ok(Some(status)) => {
                crashed.push((w.child.id(), status, w.started.elapsed()));
                false
            }
            _ => true,
        });
        for (pid, status, lived) in crashed {
            // A worker that ran a while before dying starts the count over.
            crashes_in_a_row = if lived > Duration::from_secs(60) {
                1
            } else {
                crashes_in_a_row + 1
            };
            let backoff = config
                .restart_backoff
                .saturating_mul(1 << (crashes_in_a_row - 1).min(16))
                .min(config.max_restart_backoff);
            restart_at = Some(now + backoff);
            tracing::warn!(pid, %status, backoff_ms = backoff.as_millis() as u64,
                "worker exited on its own; replacing it after the backoff");
            count(&mut conn, &prefix, "restart", "crashed").await;
        }
        // Replace crashed workers once their backoff is over.
        if running.len() < desired && restart_at.is_none_or(|at| now >= at) {
            restart_at = None;
            while running.len() < desired {
                running.push(spawn(&command)?);
            }
        }

        let backlog = match queue.backlog().await {
            Ok(backlog) => backlog,
            Err(e) => {
                tracing::warn!(error = %e, "autoscaler: cannot read the queue; holding");
                continue;
            }
        };
        if let Some((finished, at)) = last_finished {
            let dt = now.saturating_duration_since(at).as_secs_f64();
            if dt > 0.0 {
                let rate = backlog.finished.saturating_sub(finished) as f64 / dt;
                // Smoothed over a few readings; a burst's first second
                // alone would swing it.
                drain_per_sec = if drain_per_sec == 0.0 {
                    rate
                } else {
                    0.5 * drain_per_sec + 0.5 * rate
                };
            }
        }
        last_finished = Some((backlog.finished, now));
        let reading = Reading {
            backlog,
            drain_per_sec,
        };
        match config.policy.decide(desired, &reading, &mut state, now) {
            Decision::Hold => {}
            Decision::Up { to, reason } => {
                tracing::info!(from = desired, to, reason = reason.kind, detail = %reason.detail, "scaling up");
                count(&mut conn, &prefix, "up", reason.kind).await;
                desired = to;
                while running.len() < desired {
                    running.push(spawn(&command)?);
                }
            }
            Decision::Down { to, reason } => {
                tracing::info!(from = desired, to, reason = reason.kind, detail = %reason.detail, "scaling down");
                count(&mut conn, &prefix, "down", reason.kind).await;
                desired = to;
                while running.len() > desired {
                    // The newest goes first: the oldest have warm caches.
                    if let Some(worker) = running.pop() {
                        terminate(&worker.child);
                        stopping.push((worker.child, now));
                    }
                }
            }
        }
        for (child, since) in &mut stopping {
            if since.elapsed() > config.stop_timeout {
                tracing::warn!(pid = child.id(), "worker did not stop in time; killing it");
                let _ = child.kill();
            }
        }
        let _: redis::RedisResult<()> = redis::cmd("HSET")
            .arg(state_key(&prefix))
            .arg("workers")
            .arg(running.len())
            .arg("desired")
            .arg(desired)
            .arg("updated_ms")
            .arg(stratbox_redis::clock::now_ms())
            .query_async(&mut conn)
            .await;
    }
    tracing::info!(workers = running.len(), "autoscaler stopping its workers");
    for worker in &running {
        terminate(&worker.child);
    }
    stopping.extend(running.into_iter().map(|w| (w.child, Instant::now())));
    let deadline = Instant::now() + config.stop_timeout;
    for (mut child, _) in stopping {
        while Instant::now() < deadline && !matches!(child.try_wait(), Ok(Some(_))) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !matches!(child.try_wait(), Ok(Some(_))) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    let _: redis::RedisResult<()> = redis::cmd("HSET")
        .arg(state_key(&prefix))
        .arg("workers")
        .arg(0)
        .arg("desired")
        .arg(0)
        .query_async(&mut conn)
        .await;
    Ok(())
}

fn spawn(command: &WorkerCommand) -> anyhow::Result<Worker> {
    let mut cmd = Command::new(&command.exe);
    cmd.arg("worker")
        .args(&command.args)
        .envs(command.env.iter().map(|(k, v)| (k, v)))
        // Stopped with us if we are killed (`stratbox worker` reads it).
        .env(
            crate::worker::PARENT_PID_ENV,
            std::process::id().to_string(),
        )
        .stdin(Stdio::null());
    // Its own process group: a terminal's Ctrl-C reaches the autoscaler,
    // which then stops the workers itself.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd.spawn().context("cannot start a worker process")?;
    tracing::info!(pid = child.id(), "worker started");
    Ok(Worker {
        child,
        started: Instant::now(),
    })
}

fn terminate(child: &Child) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

async fn count(conn: &mut ConnectionManager, prefix: &str, action: &str, reason: &str) {
    let counted: redis::RedisResult<()> = redis::cmd("HINCRBY")
        .arg(decisions_key(prefix))
        .arg(format!("{action}:{reason}"))
        .arg(1)
        .query_async(conn)
        .await;
    if let Err(e) = counted {
        tracing::warn!(error = %e, "cannot count an autoscaler decision");
    }
}
