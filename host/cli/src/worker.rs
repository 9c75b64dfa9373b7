//! `stratbox worker --workers N`.

use super::settings::{init_logging, QueueArgs, RedisArgs};
use super::{CliError, CliResult};
use anyhow::Context;
use clap::Args;
use std::sync::Arc;
use stratbox_marketdata::ClientConfig;
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
    /// Fuel per bar of a run.
    #[arg(long, env = "STRATBOX_FUEL_PER_BAR", default_value_t = SandboxConfig::default().fuel_per_bar)]
    fuel_per_bar: u64,
    /// Fuel every run gets on top of the per-bar budget.
    #[arg(long, env = "STRATBOX_FUEL_BASE", default_value_t = SandboxConfig::default().fuel_base)]
    fuel_base: u64,
    /// Fuel per bar of a run of a Python strategy.
    #[arg(long, env = "STRATBOX_PYTHON_FUEL_PER_BAR", default_value_t = SandboxConfig::default().python_fuel_per_bar)]
    python_fuel_per_bar: u64,
    /// Fuel every Python run gets on top of its per-bar budget.
    #[arg(long, env = "STRATBOX_PYTHON_FUEL_BASE", default_value_t = SandboxConfig::default().python_fuel_base)]
    python_fuel_base: u64,
    /// Fuel per bar of a run of a JavaScript strategy.
    #[arg(long, env = "STRATBOX_JS_FUEL_PER_BAR", default_value_t = SandboxConfig::default().javascript_fuel_per_bar)]
    js_fuel_per_bar: u64,
    /// Fuel every JavaScript run gets on top of its per-bar budget.
    #[arg(long, env = "STRATBOX_JS_FUEL_BASE", default_value_t = SandboxConfig::default().javascript_fuel_base)]
    js_fuel_base: u64,
    /// Memory cap per strategy instance, in MiB.
    #[arg(long, env = "STRATBOX_MEMORY_MIB", default_value_t = SandboxConfig::default().memory_limit_bytes >> 20)]
    memory_mib: usize,
    /// Map strategy memory copy-on-write from the module image
    /// (`false` copies data segments instead).
    #[arg(long, env = "STRATBOX_MEMORY_INIT_COW", default_value_t = SandboxConfig::default().memory_init_cow, action = clap::ArgAction::Set)]
    memory_init_cow: bool,
    /// KiB of each pooled strategy memory reset with memset (no page
    /// faults for the next instance).
    #[arg(long, env = "STRATBOX_MEMORY_KEEP_RESIDENT_KIB", default_value_t = SandboxConfig::default().memory_keep_resident >> 10)]
    memory_keep_resident_kib: usize,
    /// Reset only the strategy memory pages an instance dirtied, found
    /// with Linux's PAGEMAP_SCAN (6.7+; ignored where missing).
    #[arg(long, env = "STRATBOX_PAGEMAP_SCAN", default_value_t = SandboxConfig::default().pagemap_scan, action = clap::ArgAction::Set)]
    pagemap_scan: bool,
    /// KiB of each pooled strategy table reset in place rather than
    /// released with madvise.
    #[arg(long, env = "STRATBOX_TABLE_KEEP_RESIDENT_KIB", default_value_t = SandboxConfig::default().table_keep_resident >> 10)]
    table_keep_resident_kib: usize,
    /// Pooled strategy memories released per madvise batch.
    #[arg(long, env = "STRATBOX_DECOMMIT_BATCH", default_value_t = SandboxConfig::default().decommit_batch)]
    decommit_batch: usize,
    /// Bybit's API for `data fetch` tasks (testnet:
    /// https://api-testnet.bybit.com).
    #[arg(long, env = "BYBIT_BASE_URL", default_value = stratbox_marketdata::DEFAULT_BASE_URL)]
    bybit_base_url: String,
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
    if args.memory_mib == 0 {
        return Err(CliError::input(anyhow::anyhow!(
            "--memory-mib must be at least 1"
        )));
    }
    let mut sandbox_config = SandboxConfig {
        fuel_per_bar: args.fuel_per_bar,
        fuel_base: args.fuel_base,
        python_fuel_per_bar: args.python_fuel_per_bar,
        python_fuel_base: args.python_fuel_base,
        javascript_fuel_per_bar: args.js_fuel_per_bar,
        javascript_fuel_base: args.js_fuel_base,
        memory_limit_bytes: args.memory_mib << 20,
        memory_init_cow: args.memory_init_cow,
        memory_keep_resident: args.memory_keep_resident_kib << 10,
        pagemap_scan: args.pagemap_scan,
        table_keep_resident: args.table_keep_resident_kib << 10,
        decommit_batch: args.decommit_batch,
        ..SandboxConfig::default()
    };
    // Every slot may hold an instance, plus describe calls on load.
    sandbox_config.pool_instances = sandbox_config.pool_instances.max(args.slots as u32 * 2);
    let sandbox = Sandbox::new(sandbox_config)
        .context("cannot start the sandbox")
        .map_err(CliError::run)?;
    let bybit = ClientConfig {
        base_url: args.bybit_base_url.clone(),
        ..ClientConfig::default()
    };
    stratbox_marketdata::BybitClient::new(&bybit)
        .map_err(|e| CliError::input(anyhow::anyhow!("--bybit-base-url: {e}")))?;
    // The async side only moves bytes to and from Redis; strategy runs
    // have their own slot threads, so one runtime thread is enough.
    let runtime = super::settings::runtime(Some(1))?;
    runtime
        .block_on(async {
            let store = Store::connect(&config.redis_url, &config.prefix).await?;
            let _retention = stratbox_service::retention::spawn_from_env(&store, &config.prefix)?;
            let cache = Arc::new(CandleCache::new(args.candle_cache_mib << 20));
            let tasks = Arc::new(Tasks::new(store, Arc::new(sandbox), cache).with_bybit(bybit));
            worker::run(config, tasks, worker::shutdown_signal()).await
        })
        .map_err(CliError::run)?;
    Ok(())
}
