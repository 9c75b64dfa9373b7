//! `stratbox serve`: the HTTP API.

use super::settings::{init_logging, QueueArgs, RedisArgs};
use super::{CliError, CliResult};
use anyhow::Context;
use clap::Args;
use stratbox_api::{self as api, AppState};
use stratbox_queue::Queue;
use stratbox_sandbox::{Sandbox, SandboxConfig};
use stratbox_store::Store;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "STRATBOX_API_ADDR", default_value = stratbox_api::DEFAULT_ADDR)]
    addr: String,
    /// When set, mutating endpoints need `Authorization: Bearer <token>`.
    #[arg(long, env = "STRATBOX_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Also run the scheduler loop (any number of processes may; each
    /// occurrence fires once).
    #[arg(long, env = "STRATBOX_SCHEDULER", default_value_t = true, action = clap::ArgAction::Set)]
    scheduler: bool,
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    queue: QueueArgs,
}

pub fn run(args: &ServeArgs) -> CliResult {
    init_logging();
    super::settings::exit_with_parent();
    let queue_config = args.queue.config().map_err(CliError::input)?;
    // Uploads are only described, never run: a small pool is enough.
    let sandbox = Sandbox::new(SandboxConfig {
        pool_instances: 8,
        ..SandboxConfig::default()
    })
    .context("cannot start the sandbox")
    .map_err(CliError::run)?;
    let runtime = super::settings::runtime(Some(0))?;
    runtime
        .block_on(async {
            let store = Store::connect(&args.redis.redis_url, &args.redis.prefix).await?;
            let queue =
                Queue::connect(&args.redis.redis_url, &args.redis.prefix, queue_config).await?;
            let state = AppState::new(store, queue, sandbox, args.token.as_deref());
            let listener = tokio::net::TcpListener::bind(&args.addr)
                .await
                .with_context(|| format!("cannot listen on {}", args.addr))?;
            let local = listener.local_addr().context("listener address")?;
            tracing::info!(addr = %local, auth = state.auth.token().is_some(), "api listening");
            // One signal stops both the server and the scheduler loop.
            let (stop, stopped) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                stratbox_service::worker::shutdown_signal().await;
                let _ = stop.send(true);
            });
            let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.wait_for(|stop| *stop).await;
            };
            let scheduler = args.scheduler.then(|| {
                tokio::spawn(stratbox_service::scheduler::run(
                    state.store.clone(),
                    state.queue.clone(),
                    until_stopped(stopped.clone()),
                ))
            });
            api::serve(listener, state, until_stopped(stopped)).await?;
            if let Some(scheduler) = scheduler {
                let _ = scheduler.await;
            }
            tracing::info!("api stopped");
            anyhow::Ok(())
        })
        .map_err(CliError::run)?;
    Ok(())
}
