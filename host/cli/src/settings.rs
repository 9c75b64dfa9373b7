//! Settings every service process reads (docs/conventions/command-line.md,
//! "Settings"): from flags or the environment, each default read from the
//! config type that documents it.

use clap::Args;
use std::time::Duration;
use stratbox_queue::QueueConfig;

#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// Redis to use; `rediss://` for TLS, `user:password@` for an ACL user.
    #[arg(
        long,
        env = "REDIS_URL",
        default_value = "redis://127.0.0.1:6379",
        hide_env_values = true
    )]
    pub redis_url: String,
    /// Prefix of every key.
    #[arg(long, env = "STRATBOX_PREFIX", default_value = stratbox_store::DEFAULT_PREFIX)]
    pub prefix: String,
}

/// Queue timings. Each default is read from `QueueConfig::default()`, the
/// one place it is written (with its reason).
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// Pending entries idle this long are reclaimed from dead workers.
    #[arg(long, env = "STRATBOX_VISIBILITY_TIMEOUT_MS", value_name = "MS", default_value_t = QueueConfig::default().visibility_timeout.as_millis() as u64)]
    pub visibility_timeout_ms: u64,
    /// Claim and heartbeat refresh interval.
    #[arg(long, env = "STRATBOX_KEEPALIVE_MS", value_name = "MS", default_value_t = QueueConfig::default().keepalive.as_millis() as u64)]
    pub keepalive_ms: u64,
    /// A worker without a heartbeat this long is gone.
    #[arg(long, env = "STRATBOX_HEARTBEAT_TTL_MS", value_name = "MS", default_value_t = QueueConfig::default().heartbeat_ttl.as_millis() as u64)]
    pub heartbeat_ttl_ms: u64,
    /// How often to look for dead workers' entries.
    #[arg(long, env = "STRATBOX_SWEEP_INTERVAL_MS", value_name = "MS", default_value_t = QueueConfig::default().sweep_interval.as_millis() as u64)]
    pub sweep_interval_ms: u64,
    /// Deliveries per task before the dead-letter stream.
    #[arg(long, env = "STRATBOX_MAX_ATTEMPTS", default_value_t = QueueConfig::default().max_attempts)]
    pub max_attempts: u32,
    /// First retry's backoff ceiling; doubles per attempt.
    #[arg(long, env = "STRATBOX_BACKOFF_BASE_MS", value_name = "MS", default_value_t = QueueConfig::default().backoff_base.as_millis() as u64)]
    pub backoff_base_ms: u64,
    /// Largest retry backoff.
    #[arg(long, env = "STRATBOX_BACKOFF_CAP_MS", value_name = "MS", default_value_t = QueueConfig::default().backoff_cap.as_millis() as u64)]
    pub backoff_cap_ms: u64,
    /// Per-task wall-clock limit unless the task sets one.
    #[arg(long, env = "STRATBOX_TASK_TIMEOUT_MS", value_name = "MS", default_value_t = QueueConfig::default().task_timeout.as_millis() as u64)]
    pub task_timeout_ms: u64,
    /// A lower class waiting this long is served first.
    #[arg(long, env = "STRATBOX_STARVATION_MS", value_name = "MS", default_value_t = QueueConfig::default().starvation_age.as_millis() as u64)]
    pub starvation_ms: u64,
    /// Time running tasks get to finish on SIGTERM.
    #[arg(long, env = "STRATBOX_GRACE_PERIOD_MS", value_name = "MS", default_value_t = QueueConfig::default().grace_period.as_millis() as u64)]
    pub grace_period_ms: u64,
    /// Most tasks moved per round trip.
    #[arg(long, env = "STRATBOX_FETCH_BATCH", default_value_t = QueueConfig::default().fetch_batch)]
    pub fetch_batch: usize,
    /// Work held beyond free slots, in microseconds.
    #[arg(long, env = "STRATBOX_PREFETCH_BUDGET_US", value_name = "US", default_value_t = QueueConfig::default().prefetch_budget.as_micros() as u64)]
    pub prefetch_budget_us: u64,
    /// Most tasks held beyond free slots.
    #[arg(long, env = "STRATBOX_PREFETCH_MAX", default_value_t = QueueConfig::default().prefetch_max)]
    pub prefetch_max: usize,
    /// Longest wait for more outcomes before writing a batch, in
    /// microseconds.
    #[arg(long, env = "STRATBOX_COMPLETION_LINGER_US", value_name = "US", default_value_t = QueueConfig::default().completion_linger.as_micros() as u64)]
    pub completion_linger_us: u64,
    /// How long finished tasks are kept, in seconds.
    #[arg(long, env = "STRATBOX_RESULT_TTL_SECS", value_name = "SECS", default_value_t = QueueConfig::default().result_ttl.as_secs())]
    pub result_ttl_secs: u64,
    /// Most entries the dead-letter stream keeps; the oldest go first
    /// (counted as `dlq_trimmed`).
    #[arg(long, env = "STRATBOX_DLQ_MAX_LEN", default_value_t = QueueConfig::default().dlq_max_len)]
    pub dlq_max_len: usize,
}

impl QueueArgs {
    pub fn config(&self) -> anyhow::Result<QueueConfig> {
        let c = QueueConfig {
            visibility_timeout: Duration::from_millis(self.visibility_timeout_ms),
            keepalive: Duration::from_millis(self.keepalive_ms),
            heartbeat_ttl: Duration::from_millis(self.heartbeat_ttl_ms),
            sweep_interval: Duration::from_millis(self.sweep_interval_ms),
            max_attempts: self.max_attempts,
            backoff_base: Duration::from_millis(self.backoff_base_ms),
            backoff_cap: Duration::from_millis(self.backoff_cap_ms),
            task_timeout: Duration::from_millis(self.task_timeout_ms),
            starvation_age: Duration::from_millis(self.starvation_ms),
            grace_period: Duration::from_millis(self.grace_period_ms),
            fetch_batch: self.fetch_batch,
            prefetch_budget: Duration::from_micros(self.prefetch_budget_us),
            prefetch_max: self.prefetch_max,
            completion_linger: Duration::from_micros(self.completion_linger_us),
            result_ttl: Duration::from_secs(self.result_ttl_secs),
            dlq_max_len: self.dlq_max_len,
            ..QueueConfig::default()
        };
        c.check()
            .map_err(|e| anyhow::anyhow!("queue settings: {e}"))?;
        Ok(c)
    }
}

/// A supervised process asks the kernel for SIGTERM when its supervisor
/// dies, even by SIGKILL, so it drains as on any stop instead of running
/// on as an orphan. The signal comes when the supervisor's spawning thread
/// ends; supervisors spawn from their main thread. A supervisor already
/// gone by now gets the same SIGTERM at once (nothing has started yet).
pub fn exit_with_parent() {
    let Some(parent) = std::env::var(stratbox_service::worker::PARENT_PID_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    else {
        return;
    };
    use nix::sys::signal::Signal;
    if let Err(e) = nix::sys::prctl::set_pdeathsig(Signal::SIGTERM) {
        tracing::warn!(error = %e, "cannot ask to be stopped with the supervisor");
        return;
    }
    if nix::unistd::getppid().as_raw() != parent {
        let _ = nix::sys::signal::raise(Signal::SIGTERM);
    }
}

/// Logs to standard error; `RUST_LOG` overrides the level (default info).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal, never into log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// The async runtime of a command: `None` runs everything on the calling
/// thread; `Some(n)` uses n worker threads (`Some(0)`: one per core).
pub fn runtime(worker_threads: Option<usize>) -> Result<tokio::runtime::Runtime, super::CliError> {
    use anyhow::Context;
    let mut builder = match worker_threads {
        None => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if n > 0 {
                builder.worker_threads(n);
            }
            builder
        }
    };
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .map_err(super::CliError::run)
}
