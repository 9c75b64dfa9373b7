//! How fast `stratbox autoscale` reacts. A burst of backtests breaks the
//! SLA; we measure until the added workers take tasks, then from the last
//! task's end until it is back at `--min`. Everything real: a private
//! Redis, the autoscaler (the `stratbox` binary) and its worker processes,
//! ema-crossover backtests.
//!
//! ```text
//! cargo bench -p stratbox --bench autoscale -- --plugin path/to/ema-crossover.wasm
//! ```

mod common;

use anyhow::{bail, Context};
use clap::Parser;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use stratbox_queue::{Queue, QueueConfig, TaskStatus};
use stratbox_redis::LocalRedis;
use stratbox_service::tasks::{submit_backtests, SubmitOptions};
use stratbox_store::Store;

/// How fast `stratbox autoscale` reacts: a burst that breaks the SLA,
/// until the added workers take tasks; quiet, until it is back at min.
#[derive(Debug, Parser)]
#[command(name = "autoscale")]
struct AutoscaleBenchArgs {
    /// The ema-crossover component.
    #[arg(long)]
    plugin: PathBuf,
    /// Backtests in the burst.
    #[arg(long, default_value_t = 300)]
    tasks: usize,
    /// One-minute bars per backtest (sets how long each runs).
    #[arg(long, default_value_t = 200_000)]
    bars: usize,
    #[arg(long, default_value_t = 1)]
    min: usize,
    #[arg(long, default_value_t = 3)]
    max: usize,
    #[arg(long, default_value_t = 1)]
    slots: usize,
    #[arg(long, default_value_t = 2_000)]
    target_wait_ms: u64,
    /// The autoscaler's reading interval (its default).
    #[arg(long, default_value_t = 1_000)]
    interval_ms: u64,
    /// Its default.
    #[arg(long, default_value_t = 10_000)]
    up_cooldown_ms: u64,
    /// Shorter than the 60 s default, so a run takes seconds.
    #[arg(long, default_value_t = 10_000)]
    quiet_ms: u64,
    /// Shorter than the 30 s default, likewise.
    #[arg(long, default_value_t = 5_000)]
    down_cooldown_ms: u64,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    harness: common::Harness,
}

fn main() -> ExitCode {
    common::main(|args: AutoscaleBenchArgs| run(&args))
}

#[derive(Debug, serde::Serialize)]
struct Figures {
    settings: BTreeMap<&'static str, u64>,
    tasks: usize,
    /// Mean run time of one backtest, ms.
    task_ms: f64,
    /// From the burst's submission to the first task an added worker took.
    burst_to_first_added_worker_task_ms: i64,
    /// The same, from the instant the oldest task's wait passed the target
    /// (negative: the drain-time rule acted before that).
    breach_to_first_added_worker_task_ms: i64,
    /// Until every added worker had taken a task.
    burst_to_all_added_workers_busy_ms: Option<i64>,
    /// Most worker processes seen taking tasks.
    workers_used: usize,
    burst_drained_ms: i64,
    /// From the last task's end to the first scale-down, and to `--min`.
    quiet_to_first_scale_down_ms: i64,
    quiet_to_min_ms: i64,
}

const PREFIX: &str = "bench-autoscale";
const MINUTE: i64 = 60;

fn run(args: &AutoscaleBenchArgs) -> anyhow::Result<()> {
    if args.tasks == 0 || args.bars < 2 || args.min == 0 || args.max <= args.min {
        bail!("--tasks must be at least 1, --bars at least 2, and 1 <= --min < --max");
    }
    let plugin = common::read_plugin(&args.plugin)?;
    let scratch = common::scratch_dir("autoscale");
    let redis = LocalRedis::start(&scratch.join("redis"))?;
    let runtime = common::runtime()?;
    let figures = runtime.block_on(measure(args, &plugin, &redis.url(), &scratch));
    drop(redis);
    let _ = std::fs::remove_dir_all(&scratch);
    print(args, &figures?)
}

/// The autoscaler child; SIGTERM on drop stops its workers in order.
struct Autoscaler(Child);

impl Drop for Autoscaler {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.0.wait();
    }
}

fn now_ms() -> i64 {
    stratbox_redis::clock::now_ms()
}

async fn live_workers(queue: &Queue) -> anyhow::Result<BTreeSet<String>> {
    Ok(queue.workers().await?.into_keys().collect())
}

async fn wait_until<F>(what: &str, limit: Duration, mut check: F) -> anyhow::Result<()>
where
    F: AsyncFnMut() -> anyhow::Result<bool>,
{
    let started = Instant::now();
    while !check().await? {
        if started.elapsed() > limit {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn measure(
    args: &AutoscaleBenchArgs,
    plugin: &[u8],
    url: &str,
    scratch: &std::path::Path,
) -> anyhow::Result<Figures> {
    let store = Store::connect(url, PREFIX).await?;
    let queue = Queue::connect(url, PREFIX, QueueConfig::default()).await?;
    let definition =
        common::seed_backtest(&store, plugin, scratch, args.bars, MINUTE, BTreeMap::new()).await?;

    let exe = args.harness.exe();
    let log = std::fs::File::create(scratch.join("autoscale.log"))?;
    let setting = |v: u64| v.to_string();
    let _autoscaler = Autoscaler(
        Command::new(&exe)
            .arg("autoscale")
            .args([
                "--min",
                &args.min.to_string(),
                "--max",
                &args.max.to_string(),
            ])
            .args(["--slots", &args.slots.to_string()])
            .args(["--target-wait-ms", &setting(args.target_wait_ms)])
            .args(["--interval-ms", &setting(args.interval_ms)])
            .args(["--up-cooldown-ms", &setting(args.up_cooldown_ms)])
            .args(["--quiet-ms", &setting(args.quiet_ms)])
            .args(["--down-cooldown-ms", &setting(args.down_cooldown_ms)])
            .env("REDIS_URL", url)
            .env("STRATBOX_PREFIX", PREFIX)
            .env("STRATBOX_CACHE_DIR", scratch.join("cache"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {} autoscale", exe.display()))?,
    );
    wait_until("the first workers", Duration::from_secs(60), async || {
        Ok(live_workers(&queue).await?.len() == args.min)
    })
    .await?;
    let options = SubmitOptions::default();
    // Warm-up: each starting worker compiles or maps the plugin; one task
    // so the first worker has it before the clock starts.
    let warm = submit_backtests(&store, &queue, std::slice::from_ref(&definition), &options)
        .await
        .map_err(|(_, e)| e)?;
    wait_final(&queue, &warm[0].1).await?;
    let initial = live_workers(&queue).await?;

    let burst = vec![definition; args.tasks];
    let submitted_at = now_ms();
    let ids = submit_backtests(&store, &queue, &burst, &options)
        .await
        .map_err(|(_, e)| e)?;
    let mut runs = Vec::with_capacity(ids.len());
    for (_, task_id) in &ids {
        let info = wait_final(&queue, task_id).await?;
        if info.status != TaskStatus::Completed {
            bail!("task {task_id} ended {:?}: {:?}", info.status, info.error);
        }
        let (Some(worker), Some(started), Some(finished)) =
            (info.worker, info.started_at_ms, info.finished_at_ms)
        else {
            bail!("task {task_id} has no worker or times");
        };
        runs.push((worker, started, finished));
    }
    let last_finish = runs.iter().map(|r| r.2).max().unwrap_or(submitted_at);

    // First task of each worker that was not there before the burst.
    let mut first_by_added: BTreeMap<&str, i64> = BTreeMap::new();
    for (worker, started, _) in &runs {
        if !initial.contains(worker) {
            let first = first_by_added.entry(worker).or_insert(*started);
            *first = (*first).min(*started);
        }
    }
    let Some(first_added) = first_by_added.values().min().copied() else {
        bail!("no added worker took a task: the burst did not break the SLA (try more --tasks or --bars)");
    };
    let added_wanted = (args.max - args.min).min(args.tasks);
    let all_added = (first_by_added.len() >= added_wanted)
        .then(|| first_by_added.values().max().copied())
        .flatten();
    let workers_used = runs
        .iter()
        .map(|r| r.0.as_str())
        .collect::<BTreeSet<_>>()
        .len();
    let task_ms = runs.iter().map(|r| (r.2 - r.1) as f64).sum::<f64>() / runs.len() as f64;

    // Quiet: the autoscaler's desired count falls, then the workers go.
    let mut conn = queue.connection();
    let mut first_down = None;
    let limit =
        Duration::from_millis(args.quiet_ms + args.down_cooldown_ms * (args.max as u64) + 60_000);
    wait_until("scale-down to --min", limit, async || {
        let stats = stratbox_service::autoscale::read_stats(&mut conn, PREFIX).await?;
        let down = stats
            .decisions
            .iter()
            .filter(|((action, _), _)| action == "down")
            .map(|(_, n)| *n)
            .sum::<u64>();
        if down > 0 && first_down.is_none() {
            first_down = Some(now_ms());
        }
        Ok(live_workers(&queue).await?.len() == args.min && stats.desired == Some(args.min as u64))
    })
    .await?;
    let at_min = now_ms();

    let settings = BTreeMap::from([
        ("min", args.min as u64),
        ("max", args.max as u64),
        ("slots", args.slots as u64),
        ("bars_per_task", args.bars as u64),
        ("target_wait_ms", args.target_wait_ms),
        ("interval_ms", args.interval_ms),
        ("up_cooldown_ms", args.up_cooldown_ms),
        ("quiet_ms", args.quiet_ms),
        ("down_cooldown_ms", args.down_cooldown_ms),
    ]);
    Ok(Figures {
        settings,
        tasks: args.tasks,
        task_ms,
        burst_to_first_added_worker_task_ms: first_added - submitted_at,
        breach_to_first_added_worker_task_ms: first_added
            - (submitted_at + args.target_wait_ms as i64),
        burst_to_all_added_workers_busy_ms: all_added.map(|t| t - submitted_at),
        workers_used,
        burst_drained_ms: last_finish - submitted_at,
        quiet_to_first_scale_down_ms: first_down.unwrap_or(at_min) - last_finish,
        quiet_to_min_ms: at_min - last_finish,
    })
}

async fn wait_final(queue: &Queue, task_id: &str) -> anyhow::Result<stratbox_queue::TaskInfo> {
    let started = Instant::now();
    loop {
        if let Some(info) = queue.task(task_id).await? {
            if info.status.is_final() {
                return Ok(info);
            }
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("task {task_id} did not finish within 10 min");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn print(args: &AutoscaleBenchArgs, f: &Figures) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(f)?);
        return Ok(());
    }
    let settings: Vec<String> = f.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("stratbox bench autoscale ({})", settings.join(" "));
    println!(
        "  burst: {} backtests of {:.0} ms each, drained in {:.1} s by {} workers",
        f.tasks,
        f.task_ms,
        f.burst_drained_ms as f64 / 1000.0,
        f.workers_used
    );
    println!(
        "  burst -> first task on an added worker     {:>7} ms",
        f.burst_to_first_added_worker_task_ms
    );
    println!(
        "  SLA breach -> first task on an added worker {:>6} ms  (breach = burst + target wait)",
        f.breach_to_first_added_worker_task_ms
    );
    match f.burst_to_all_added_workers_busy_ms {
        Some(ms) => println!("  burst -> every added worker busy           {ms:>7} ms"),
        None => {
            println!("  burst -> every added worker busy           not reached (burst too short)")
        }
    }
    println!(
        "  quiet -> first scale-down                  {:>7} ms",
        f.quiet_to_first_scale_down_ms
    );
    println!(
        "  quiet -> back at --min                     {:>7} ms",
        f.quiet_to_min_ms
    );
    Ok(())
}
