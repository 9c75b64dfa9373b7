//! `stratbox worker --workers N`.

use super::settings::{init_logging, QueueArgs, RedisArgs};
use super::{CliError, CliResult};
use anyhow::Context;
use clap::Args;
use std::sync::Arc;
use stratbox_sandbox::{Sandbox, SandboxConfig};
use stratbox_service::tasks::Tasks;
use stratbox_service::worker::{self, WorkerConfig};
use stratbox_store::{CandleCache, Store};

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// Task slots in this process (tasks run at once).
    #[arg(long = "workers", default_value_t = 2, env = "STRATBOX_WORKERS")]
    slots: usize,
    /// Consumer name (default: host-pid-bootid, unique per process).
    #[arg(long)]
    name: Option<String>,
    /// Worker-side candle cache budget, in MiB.
    #[arg(long, default_value_t = 512, env = "STRATBOX_CANDLE_CACHE_MIB")]
    candle_cache_mib: usize,
    /// Fuel per bar of a run [default: 20000].
    #[arg(long, env = "STRATBOX_FUEL_PER_BAR")]
    fuel_per_bar: Option<u64>,
    /// Fuel every run gets on top of the per-bar budget [default: 100000000].
    #[arg(long, env = "STRATBOX_FUEL_BASE")]
    fuel_base: Option<u64>,
    /// Memory cap per strategy instance, in MiB [default: 64].
    #[arg(long, env = "STRATBOX_MEMORY_MIB")]
    memory_mib: Option<usize>,
    /// Map strategy memory copy-on-write from the module image
    /// (`false` copies data segments instead) [default: true].
    #[arg(long, env = "STRATBOX_MEMORY_INIT_COW")]
    memory_init_cow: Option<bool>,
    /// KiB of each pooled strategy memory reset with memset (no page
    /// faults for the next instance) [default: 512].
    #[arg(long, env = "STRATBOX_MEMORY_KEEP_RESIDENT_KIB")]
    memory_keep_resident_kib: Option<usize>,
    /// Reset only the strategy memory pages an instance dirtied, found
    /// with Linux's PAGEMAP_SCAN (6.7+; ignored where missing) [default: true].
    #[arg(long, env = "STRATBOX_PAGEMAP_SCAN")]
    pagemap_scan: Option<bool>,
    /// KiB of each pooled strategy table reset in place rather than
    /// released with madvise [default: 64].
    #[arg(long, env = "STRATBOX_TABLE_KEEP_RESIDENT_KIB")]
    table_keep_resident_kib: Option<usize>,
    /// Pooled strategy memories released per madvise batch [default: 32].
    #[arg(long, env = "STRATBOX_DECOMMIT_BATCH")]
    decommit_batch: Option<usize>,
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    queue: QueueArgs,
}

pub fn run(args: &WorkerArgs) -> CliResult {
    init_logging();
    super::settings::exit_with_parent();
    if args.slots == 0 {
        return Err(CliError::input(anyhow::anyhow!(
            "--workers must be at least 1"
        )));
    }
    let queue = args.queue.config().map_err(CliError::input)?;
    let config = WorkerConfig {
        redis_url: args.redis.redis_url.clone(),
        prefix: args.redis.prefix.clone(),
        slots: args.slots,
        queue,
        name: args.name.clone(),
    };
    let mut sandbox_config = SandboxConfig::default();
    if let Some(v) = args.fuel_per_bar {
        sandbox_config.fuel_per_bar = v;
    }
    if let Some(v) = args.fuel_base {
        sandbox_config.fuel_base = v;
    }
    if let Some(v) = args.memory_init_cow {
        sandbox_config.memory_init_cow = v;
    }
    if let Some(v) = args.memory_keep_resident_kib {
        sandbox_config.memory_keep_resident = v << 10;
    }
    if let Some(v) = args.pagemap_scan {
        sandbox_config.pagemap_scan = v;
    }
    if let Some(v) = args.table_keep_resident_kib {
        sandbox_config.table_keep_resident = v << 10;
    }
    if let Some(v) = args.decommit_batch {
        sandbox_config.decommit_batch = v;
    }
    if let Some(v) = args.memory_mib {
        if v == 0 {
            return Err(CliError::input(anyhow::anyhow!(
                "--memory-mib must be at least 1"
            )));
        }
        sandbox_config.memory_limit_bytes = v << 20;
    }
    // Every slot may hold an instance, plus describe calls on load.
    sandbox_config.pool_instances = sandbox_config.pool_instances.max(args.slots as u32 * 2);
    let sandbox = Sandbox::new(sandbox_config)
        .context("cannot start the sandbox")
        .map_err(CliError::run)?;
    // The async side only moves bytes to and from Redis; strategy runs
    // have their own slot threads, so one runtime thread is enough.
    let runtime = super::settings::runtime(Some(1))?;
    runtime
        .block_on(async {
            let store = Store::connect(&config.redis_url, &config.prefix).await?;
            let cache = Arc::new(CandleCache::new(args.candle_cache_mib << 20));
            let tasks = Arc::new(Tasks::new(store, Arc::new(sandbox), cache));
            worker::run(config, tasks, worker::shutdown_signal()).await
        })
        .map_err(CliError::run)?;
    Ok(())
}
