//! `stratbox autoscale`: worker processes on this machine, sized to an SLA.

use super::settings::{init_logging, QueueArgs, RedisArgs};
use super::{CliError, CliResult};
use anyhow::{anyhow, Context};
use clap::Args;
use std::time::Duration;
use stratbox_queue::Queue;
use stratbox_service::autoscale::policy::Policy;
use stratbox_service::autoscale::{self, AutoscaleConfig, WorkerCommand};

#[derive(Debug, Args)]
pub struct AutoscaleArgs {
    /// Fewest worker processes (kept even when idle).
    #[arg(long, default_value_t = 1, env = "STRATBOX_AUTOSCALE_MIN")]
    min: usize,
    /// Most worker processes.
    #[arg(long, default_value_t = 4, env = "STRATBOX_AUTOSCALE_MAX")]
    max: usize,
    /// Task slots per worker process.
    #[arg(long, default_value_t = 2, env = "STRATBOX_WORKERS")]
    slots: usize,
    /// The SLA: scale up when the oldest waiting task has waited longer,
    /// or the backlog would take longer to drain at the measured rate.
    #[arg(
        long,
        default_value_t = 5_000,
        env = "STRATBOX_AUTOSCALE_TARGET_WAIT_MS",
        value_name = "MS"
    )]
    target_wait_ms: u64,
    /// Least time between scale-ups.
    #[arg(
        long,
        default_value_t = 10_000,
        env = "STRATBOX_AUTOSCALE_UP_COOLDOWN_MS",
        value_name = "MS"
    )]
    up_cooldown_ms: u64,
    /// Least time after any change before a scale-down.
    #[arg(
        long,
        default_value_t = 30_000,
        env = "STRATBOX_AUTOSCALE_DOWN_COOLDOWN_MS",
        value_name = "MS"
    )]
    down_cooldown_ms: u64,
    /// How long nothing must wait or run before a worker is stopped.
    #[arg(
        long,
        default_value_t = 60_000,
        env = "STRATBOX_AUTOSCALE_QUIET_MS",
        value_name = "MS"
    )]
    quiet_ms: u64,
    /// How often the queue is read.
    #[arg(
        long,
        default_value_t = 1_000,
        env = "STRATBOX_AUTOSCALE_INTERVAL_MS",
        value_name = "MS"
    )]
    interval_ms: u64,
    /// First delay before replacing a crashed worker (doubles per crash
    /// in a row, up to 60 s).
    #[arg(
        long,
        default_value_t = 1_000,
        env = "STRATBOX_AUTOSCALE_RESTART_BACKOFF_MS",
        value_name = "MS"
    )]
    restart_backoff_ms: u64,
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    queue: QueueArgs,
}

pub fn run(args: &AutoscaleArgs) -> CliResult {
    init_logging();
    let queue_config = args.queue.config().map_err(CliError::input)?;
    if args.slots == 0 || args.interval_ms == 0 {
        return Err(CliError::input(anyhow!(
            "--slots and --interval-ms must be at least 1"
        )));
    }
    let policy = Policy {
        min: args.min,
        max: args.max,
        target_wait: Duration::from_millis(args.target_wait_ms),
        up_cooldown: Duration::from_millis(args.up_cooldown_ms),
        down_cooldown: Duration::from_millis(args.down_cooldown_ms),
        quiet_period: Duration::from_millis(args.quiet_ms),
    };
    policy.check().map_err(|e| CliError::input(anyhow!(e)))?;
    let config = AutoscaleConfig {
        policy,
        interval: Duration::from_millis(args.interval_ms),
        restart_backoff: Duration::from_millis(args.restart_backoff_ms),
        max_restart_backoff: Duration::from_secs(60),
        stop_timeout: queue_config.grace_period + Duration::from_secs(10),
    };
    let command = WorkerCommand {
        exe: std::env::current_exe()
            .context("cannot find the stratbox binary")
            .map_err(CliError::run)?,
        args: vec!["--workers".into(), args.slots.to_string()],
        env: vec![
            ("REDIS_URL".into(), args.redis.redis_url.clone()),
            ("STRATBOX_PREFIX".into(), args.redis.prefix.clone()),
        ],
    };
    let runtime = super::settings::runtime(None)?;
    runtime
        .block_on(async {
            let queue =
                Queue::connect(&args.redis.redis_url, &args.redis.prefix, queue_config).await?;
            autoscale::run(
                config,
                command,
                queue,
                stratbox_service::worker::shutdown_signal(),
            )
            .await
        })
        .map_err(CliError::run)?;
    Ok(())
}
