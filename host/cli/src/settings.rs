//! Settings every service process reads (SPEC section 9): from flags or
//! the environment, each with the default `QueueConfig` documents.

use clap::Args;
use std::time::Duration;
use stratbox_queue::QueueConfig;

#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// Redis to use.
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis_url: String,
    /// Prefix of every key.
    #[arg(long, env = "STRATBOX_PREFIX", default_value = stratbox_store::DEFAULT_PREFIX)]
    pub prefix: String,
}

/// Queue timings; unset ones keep the defaults of `QueueConfig`.
#[derive(Debug, Clone, Default, Args)]
pub struct QueueArgs {
    /// Pending entries idle this long are reclaimed from dead workers [default: 30000].
    #[arg(long, env = "STRATBOX_VISIBILITY_TIMEOUT_MS", value_name = "MS")]
    pub visibility_timeout_ms: Option<u64>,
    /// Claim and heartbeat refresh interval [default: 3000].
    #[arg(long, env = "STRATBOX_KEEPALIVE_MS", value_name = "MS")]
    pub keepalive_ms: Option<u64>,
    /// A worker without a heartbeat this long is gone [default: 10000].
    #[arg(long, env = "STRATBOX_HEARTBEAT_TTL_MS", value_name = "MS")]
    pub heartbeat_ttl_ms: Option<u64>,
    /// How often to look for dead workers' entries [default: 5000].
    #[arg(long, env = "STRATBOX_SWEEP_INTERVAL_MS", value_name = "MS")]
    pub sweep_interval_ms: Option<u64>,
    /// Deliveries per task before the dead-letter stream [default: 3].
    #[arg(long, env = "STRATBOX_MAX_ATTEMPTS")]
    pub max_attempts: Option<u32>,
    /// First retry's backoff ceiling; doubles per attempt [default: 1000].
    #[arg(long, env = "STRATBOX_BACKOFF_BASE_MS", value_name = "MS")]
    pub backoff_base_ms: Option<u64>,
    /// Largest retry backoff [default: 60000].
    #[arg(long, env = "STRATBOX_BACKOFF_CAP_MS", value_name = "MS")]
    pub backoff_cap_ms: Option<u64>,
    /// Per-task wall-clock limit unless the task sets one [default: 600000].
    #[arg(long, env = "STRATBOX_TASK_TIMEOUT_MS", value_name = "MS")]
    pub task_timeout_ms: Option<u64>,
    /// A lower class waiting this long is served first [default: 30000].
    #[arg(long, env = "STRATBOX_STARVATION_MS", value_name = "MS")]
    pub starvation_ms: Option<u64>,
    /// Time running tasks get to finish on SIGTERM [default: 30000].
    #[arg(long, env = "STRATBOX_GRACE_PERIOD_MS", value_name = "MS")]
    pub grace_period_ms: Option<u64>,
    /// Most tasks moved per round trip [default: 256].
    #[arg(long, env = "STRATBOX_FETCH_BATCH")]
    pub fetch_batch: Option<usize>,
    /// Work held beyond free slots, in microseconds [default: 20000].
    #[arg(long, env = "STRATBOX_PREFETCH_BUDGET_US", value_name = "US")]
    pub prefetch_budget_us: Option<u64>,
    /// Most tasks held beyond free slots [default: 512].
    #[arg(long, env = "STRATBOX_PREFETCH_MAX")]
    pub prefetch_max: Option<usize>,
    /// Longest wait for more outcomes before writing a batch, in
    /// microseconds [default: 500].
    #[arg(long, env = "STRATBOX_COMPLETION_LINGER_US", value_name = "US")]
    pub completion_linger_us: Option<u64>,
    /// How long finished tasks are kept, in seconds [default: 604800].
    #[arg(long, env = "STRATBOX_RESULT_TTL_SECS", value_name = "SECS")]
    pub result_ttl_secs: Option<u64>,
}

impl QueueArgs {
    pub fn config(&self) -> anyhow::Result<QueueConfig> {
        let mut c = QueueConfig::default();
        let ms = Duration::from_millis;
        if let Some(v) = self.visibility_timeout_ms {
            c.visibility_timeout = ms(v);
        }
        if let Some(v) = self.keepalive_ms {
            c.keepalive = ms(v);
        }
        if let Some(v) = self.heartbeat_ttl_ms {
            c.heartbeat_ttl = ms(v);
        }
        if let Some(v) = self.sweep_interval_ms {
            c.sweep_interval = ms(v);
        }
        if let Some(v) = self.max_attempts {
            c.max_attempts = v;
        }
        if let Some(v) = self.backoff_base_ms {
            c.backoff_base = ms(v);
        }
        if let Some(v) = self.backoff_cap_ms {
            c.backoff_cap = ms(v);
        }
        if let Some(v) = self.task_timeout_ms {
            c.task_timeout = ms(v);
        }
        if let Some(v) = self.starvation_ms {
            c.starvation_age = ms(v);
        }
        if let Some(v) = self.grace_period_ms {
            c.grace_period = ms(v);
        }
        if let Some(v) = self.fetch_batch {
            c.fetch_batch = v;
        }
        if let Some(v) = self.prefetch_budget_us {
            c.prefetch_budget = Duration::from_micros(v);
        }
        if let Some(v) = self.prefetch_max {
            c.prefetch_max = v;
        }
        if let Some(v) = self.completion_linger_us {
            c.completion_linger = Duration::from_micros(v);
        }
        if let Some(v) = self.result_ttl_secs {
            c.result_ttl = Duration::from_secs(v);
        }
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
