//! `stratbox scheduler`: the scheduler loop alone (`serve` runs it too).

use super::settings::{init_logging, QueueArgs, RedisArgs};
use super::{CliError, CliResult};
use clap::Args;
use stratbox_queue::Queue;
use stratbox_store::Store;

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
            stratbox_service::scheduler::run(
                store,
                queue,
                stratbox_service::worker::shutdown_signal(),
            )
            .await;
            tracing::info!("scheduler stopped");
            anyhow::Ok(())
        })
        .map_err(CliError::run)?;
    Ok(())
}
