//! `stratbox scheduler`: the scheduler loop alone (`serve` runs it too).

use super::settings::{init_logging, QueueArgs, RedisArgs};
use super::{CliError, CliResult};
use crate::queue::Queue;
use crate::store::Store;
use clap::Args;

#[derive(Debug, Args)]
pub struct SchedulerArgs {
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    queue: QueueArgs,
}

pub fn run(args: &SchedulerArgs) -> CliResult {
    init_logging();
    let queue_config = args.queue.config().map_err(CliError::input)?;
    let runtime = super::settings::runtime(None)?;
    runtime
        .block_on(async {
            let store = Store::connect(&args.redis.redis_url, &args.redis.prefix).await?;
            let queue =
                Queue::connect(&args.redis.redis_url, &args.redis.prefix, queue_config).await?;
            tracing::info!("scheduler running");
            crate::scheduler::run(store, queue, crate::worker::shutdown_signal()).await;
            tracing::info!("scheduler stopped");
            anyhow::Ok(())
        })
        .map_err(CliError::run)?;
    Ok(())
}
