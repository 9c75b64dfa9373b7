//! The queue's figures end to end, against a real worker process (the
//! `stratbox` binary) and Redis, with `redis-benchmark`'s XADD rate
//! measured in the same run as the ceiling.
//!
//! ```text
//! cargo bench -p stratbox --bench queue -- --plugin path/to/ema-crossover.wasm
//! ```

mod common;

use anyhow::{anyhow, bail};
use clap::Parser;
use futures_util::{StreamExt, TryStreamExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use common::{batch_sizes, seed_backtest, WorkerProcess, PREFIX};
use stratbox_queue::{Queue, QueueConfig, TaskSpec};
use stratbox_redis::{LocalRedis, Persistence};
use stratbox_service::tasks::{submit_backtests, SubmitOptions, KIND_NOOP};
use stratbox_store::Store;

/// Queue figures end to end: no-op and tiny-backtest throughput through
/// a worker process, submit-to-start latency, worker memory.
#[derive(Debug, Parser)]
#[command(name = "queue")]
struct QueueBenchArgs {
    /// The ema-crossover component, for the tiny-backtest run.
    #[arg(long)]
    plugin: PathBuf,
    /// No-op tasks in the throughput run.
    #[arg(long, default_value_t = 100_000)]
    tasks: usize,
    /// 100-bar backtests in the throughput run.
    #[arg(long, default_value_t = 100_000)]
    backtests: usize,
    /// Task slots of the worker process.
    #[arg(long, default_value_t = 2)]
    slots: usize,
    /// Tasks per submission call in the throughput runs.
    #[arg(long, default_value_t = SUBMIT_BATCH)]
    submit_batch: usize,
    /// Submission calls in flight at once in the throughput runs.
    #[arg(long, default_value_t = 1)]
    submit_concurrency: usize,
    /// Tasks timed one at a time for submit-to-start latency.
    #[arg(long, default_value_t = 1_000)]
    latency_samples: usize,
    /// Tasks of each kind run through the scripts alone (no worker), for
    /// Redis CPU per task and script [default: --tasks, and --backtests,
    /// at most 20,000].
    #[arg(long)]
    probe_tasks: Option<usize>,
    /// XADDs `redis-benchmark` sends for the ceiling figure (pipelined;
    /// a fifth of that one at a time).
    #[arg(long, default_value_t = 500_000)]
    ceiling_requests: usize,
    /// Use this Redis instead of a private one (it must be empty of the
    /// `bench` prefix).
    #[arg(long)]
    redis_url: Option<String>,
    /// How the private Redis persists: `aof` (what we run), `snapshots`
    /// (Debian's stock config, as a Celery broker runs) or `none`.
    #[arg(long, value_enum, default_value_t = RedisPersistence::Aof, conflicts_with = "redis_url")]
    redis_persistence: RedisPersistence,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    harness: common::Harness,
}

fn main() -> ExitCode {
    common::main(|args: QueueBenchArgs| run(&args))
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum RedisPersistence {
    Aof,
    Snapshots,
    None,
}

impl From<RedisPersistence> for Persistence {
    fn from(p: RedisPersistence) -> Self {
        match p {
            RedisPersistence::Aof => Persistence::Aof,
            RedisPersistence::Snapshots => Persistence::Snapshots,
            RedisPersistence::None => Persistence::None,
        }
    }
}

/// Submissions per script call, as a client submitting in bulk would.
const SUBMIT_BATCH: usize = 1_000;

#[derive(Debug, serde::Serialize)]
struct Figures {
    slots: usize,
    submit_batch: usize,
    submit_concurrency: usize,
    redis_xadd_pipelined_per_sec: Option<f64>,
    redis_xadd_unpipelined_per_sec: Option<f64>,
    /// Redis CPU per task of each queue script, measured alone.
    redis_us_per_noop: ScriptCosts,
    /// The same for 100-bar backtests (their record, holds and report).
    redis_us_per_backtest: ScriptCosts,
    noop_tasks: usize,
    noop_tasks_per_sec: f64,
    noop_submit_per_sec: f64,
    noop_cpu_us_per_task: CpuPerTask,
    backtests: usize,
    backtests_per_sec: f64,
    backtest_submit_per_sec: f64,
    /// Backtests completed by the time the last one was submitted: Redis
    /// serves the submitter and the worker until then, the worker alone
    /// after.
    backtests_done_while_submitting: i64,
    /// The rate after the last submission (none when nothing was left).
    backtest_drain_per_sec: Option<f64>,
    backtest_cpu_us_per_task: CpuPerTask,
    latency_samples: usize,
    latency_p50_ms: f64,
    latency_p99_ms: f64,
    latency_max_ms: f64,
    idle_worker_rss_mb: f64,
    loaded_worker_rss_mb: f64,
}

fn run(args: &QueueBenchArgs) -> anyhow::Result<()> {
    if args.slots == 0
        || args.tasks == 0
        || args.backtests == 0
        || args.latency_samples == 0
        || args.submit_batch == 0
        || args.submit_concurrency == 0
        || args.probe_tasks == Some(0)
    {
        bail!(
            "--slots, --tasks, --backtests, --submit-batch, --submit-concurrency, --latency-samples and --probe-tasks must be at least 1"
        );
    }
    let bytes = common::read_plugin(&args.plugin)?;
    let scratch = common::scratch_dir("queue");
    let (_server, url) = match &args.redis_url {
        Some(url) => (None, url.clone()),
        None => {
            let server =
                LocalRedis::start_with(&scratch.join("redis"), args.redis_persistence.into())?;
            let url = server.url();
            (Some(server), url)
        }
    };
    let redis_pid = _server.as_ref().and_then(LocalRedis::pid);
    let runtime = common::runtime()?;
    let figures = runtime.block_on(measure(args, &url, redis_pid, &bytes, &scratch))?;
    drop(_server);
    let _ = std::fs::remove_dir_all(&scratch);
    print(args, &figures)
}

async fn measure(
    args: &QueueBenchArgs,
    url: &str,
    redis_pid: Option<u32>,
    plugin: &[u8],
    scratch: &Path,
) -> anyhow::Result<Figures> {
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .unwrap_or(6379);
    let xadd_pipelined = redis_benchmark_xadd(port, 64, args.ceiling_requests);
    let xadd_unpipelined = redis_benchmark_xadd(port, 1, args.ceiling_requests / 5);

    let store = Store::connect(url, PREFIX).await?;
    let queue = Queue::connect(url, PREFIX, QueueConfig::default()).await?;
    let probes = |kind_tasks: usize| args.probe_tasks.unwrap_or(kind_tasks.min(20_000));
    let noop_specs: Vec<TaskSpec> = (0..SUBMIT_BATCH)
        .map(|_| TaskSpec::new(KIND_NOOP, "{}".into()))
        .collect();
    let noop_scripts = script_costs(
        &queue,
        url,
        probes(args.tasks),
        |k| {
            let (queue, specs) = (&queue, &noop_specs[..k]);
            async move { Ok(queue.submit(specs).await.map(drop)?) }
        },
        "{}",
    )
    .await?;
    let mut worker = WorkerProcess::spawn(&args.harness.exe(), url, args.slots, scratch)?;
    worker.wait_ready(&queue).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = worker.rss_mb()?;

    // Latency at light load: one task every 2 ms, timed by Redis' clock
    // from submission to the start script.
    let mut latency_ids = Vec::with_capacity(args.latency_samples);
    for _ in 0..args.latency_samples {
        latency_ids.push(
            queue
                .submit_one(TaskSpec::new(KIND_NOOP, "{}".into()))
                .await?,
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    wait_completed(
        &queue,
        count_completed(&queue).await?,
        0,
        Duration::from_secs(30),
    )
    .await?;
    let mut latencies = Vec::with_capacity(latency_ids.len());
    for id in &latency_ids {
        let info = queue
            .task(id)
            .await?
            .ok_or_else(|| anyhow!("task {id} vanished"))?;
        let field = |name: &str| -> anyhow::Result<i64> {
            info.fields
                .get(name)
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("task {id} has no {name}"))
        };
        latencies.push((field("started_us")? - field("created_us")?) as f64 / 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];

    // No-op throughput: submitted in batches while the worker drains.
    let specs: Vec<TaskSpec> = (0..args.submit_batch)
        .map(|_| TaskSpec::new(KIND_NOOP, "{}".into()))
        .collect();
    let before = count_completed(&queue).await?;
    let cpu = CpuMeter::start(worker.pid(), redis_pid);
    let started = Instant::now();
    futures_util::stream::iter(batch_sizes(args.tasks, args.submit_batch))
        .map(|n| queue.submit(&specs[..n]))
        .buffer_unordered(args.submit_concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    let noop_submit_secs = started.elapsed().as_secs_f64();
    wait_completed(&queue, before, args.tasks, Duration::from_secs(600)).await?;
    let noop_secs = started.elapsed().as_secs_f64();
    let noop_cpu = cpu.per_task(args.tasks);

    // Tiny backtests: 100 hourly bars of ema-crossover, plugin cached.
    let params = [
        ("fast_period".to_string(), 5.into()),
        ("slow_period".to_string(), 12.into()),
    ];
    let definition = seed_backtest(
        &store,
        plugin,
        scratch,
        100,
        3_600,
        params.into_iter().collect(),
    )
    .await?;
    let options = SubmitOptions::default();
    // Warm-up: the worker compiles (or maps) the plugin once.
    let warm = count_completed(&queue).await?;
    submit_backtests(&store, &queue, std::slice::from_ref(&definition), &options)
        .await
        .map_err(|(_, e)| e)?;
    wait_completed(&queue, warm, 1, Duration::from_secs(120)).await?;
    let batch = vec![definition; args.submit_batch.max(SUBMIT_BATCH)];
    let before = count_completed(&queue).await?;
    let failed_before = queue.counters().await?.tasks_failed;
    let cpu = CpuMeter::start(worker.pid(), redis_pid);
    let started = Instant::now();
    let sizes = batch_sizes(args.backtests, args.submit_batch);
    futures_util::stream::iter(sizes)
        .map(|n| {
            let (store, queue, batch, options) = (&store, &queue, &batch[..n], &options);
            async move {
                submit_backtests(store, queue, batch, options)
                    .await
                    .map_err(|(_, e)| e)
            }
        })
        .buffer_unordered(args.submit_concurrency)
        .try_collect::<Vec<_>>()
        .await?;
    let backtest_submit_secs = started.elapsed().as_secs_f64();
    let done_while_submitting = count_completed(&queue).await? - before;
    wait_completed(&queue, before, args.backtests, Duration::from_secs(900)).await?;
    let backtest_secs = started.elapsed().as_secs_f64();
    let left_after_submitting = args.backtests as i64 - done_while_submitting;
    let drain_per_sec = (left_after_submitting > 0)
        .then(|| left_after_submitting as f64 / (backtest_secs - backtest_submit_secs));
    let backtest_cpu = cpu.per_task(args.backtests);
    let failed = queue.counters().await?.tasks_failed - failed_before;
    if failed > 0 {
        bail!("{failed} benchmark backtests failed; see the worker log");
    }
    let loaded_rss = worker.rss_mb()?;
    worker.stop()?;
    // The scripts alone once more, for backtests, completing with the
    // report the worker wrote for one of them, as it is stored.
    let last = store
        .list_backtests(1)
        .await?
        .pop()
        .ok_or_else(|| anyhow!("no benchmark backtest was recorded"))?;
    let report: Option<String> = redis::cmd("HGET")
        .arg(store.keys().backtest(last.id))
        .arg(stratbox_store::backtests::fields::REPORT)
        .query_async(&mut queue.connection())
        .await?;
    let report = report.ok_or_else(|| anyhow!("benchmark backtest {} has no report", last.id))?;
    let backtest_scripts = script_costs(
        &queue,
        url,
        probes(args.backtests),
        |k| {
            let (store, queue, batch, options) = (&store, &queue, &batch[..k], &options);
            async move {
                submit_backtests(store, queue, batch, options)
                    .await
                    .map(drop)
                    .map_err(|(_, e)| anyhow::Error::from(e))
            }
        },
        &report,
    )
    .await?;
    Ok(Figures {
        slots: args.slots,
        submit_batch: args.submit_batch,
        submit_concurrency: args.submit_concurrency,
        redis_xadd_pipelined_per_sec: xadd_pipelined,
        redis_xadd_unpipelined_per_sec: xadd_unpipelined,
        redis_us_per_noop: noop_scripts,
        redis_us_per_backtest: backtest_scripts,
        noop_tasks: args.tasks,
        noop_tasks_per_sec: args.tasks as f64 / noop_secs,
        noop_submit_per_sec: args.tasks as f64 / noop_submit_secs,
        noop_cpu_us_per_task: noop_cpu,
        backtests: args.backtests,
        backtests_per_sec: args.backtests as f64 / backtest_secs,
        backtest_submit_per_sec: args.backtests as f64 / backtest_submit_secs,
        backtests_done_while_submitting: done_while_submitting,
        backtest_drain_per_sec: drain_per_sec,
        backtest_cpu_us_per_task: backtest_cpu,
        latency_samples: latencies.len(),
        latency_p50_ms: pct(0.5),
        latency_p99_ms: pct(0.99),
        latency_max_ms: pct(1.0),
        idle_worker_rss_mb: idle_rss,
        loaded_worker_rss_mb: loaded_rss,
    })
}

/// Redis's own CPU time (`INFO cpu`), in seconds.
async fn redis_cpu(queue: &Queue) -> anyhow::Result<f64> {
    let mut conn = queue.connection();
    let info: String = redis::cmd("INFO").arg("cpu").query_async(&mut conn).await?;
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok(field("used_cpu_sys:") + field("used_cpu_user:"))
}

/// Redis CPU per task of each queue script, in µs.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct ScriptCosts {
    submit: f64,
    fetch: f64,
    complete: f64,
}

/// Redis CPU per task of submit, fetch and complete, each run alone in
/// batches (no worker running): where a task's Redis time goes. `submit`
/// queues `k` tasks; each completes with `result`. CPU time is steadier
/// than a rate on a shared host, but it still drifts with the host's
/// speed: compare builds in runs made at the same time.
async fn script_costs<F, Fut>(
    queue: &Queue,
    url: &str,
    n: usize,
    mut submit: F,
    result: &str,
) -> anyhow::Result<ScriptCosts>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let per_task = |before: f64, after: f64| (after - before) * 1e6 / n as f64;
    let t0 = redis_cpu(queue).await?;
    let mut left = n;
    while left > 0 {
        let k = left.min(SUBMIT_BATCH);
        submit(k).await?;
        left -= k;
    }
    let t1 = redis_cpu(queue).await?;
    let consumer = stratbox_queue::Consumer::new(queue.clone(), url, "bench-probe".into()).await?;
    let mut deliveries = Vec::with_capacity(n);
    while deliveries.len() < n {
        let got = consumer.fetch(256, false).await?;
        if got.is_empty() {
            bail!("fetched {} of {n} probe tasks", deliveries.len());
        }
        deliveries.extend(got);
    }
    let t2 = redis_cpu(queue).await?;
    for chunk in deliveries.chunks(256) {
        let outcomes: Vec<_> = chunk
            .iter()
            .map(|d| {
                (
                    stratbox_queue::consumer::Held::from(d),
                    stratbox_queue::Outcome::Completed {
                        result: result.to_string(),
                    },
                )
            })
            .collect();
        consumer.complete(&outcomes).await?;
    }
    let t3 = redis_cpu(queue).await?;
    consumer.leave().await?;
    Ok(ScriptCosts {
        submit: per_task(t0, t1),
        fetch: per_task(t1, t2),
        complete: per_task(t2, t3),
    })
}

async fn count_completed(queue: &Queue) -> anyhow::Result<i64> {
    Ok(queue.counters().await?.tasks_completed)
}

/// Polls the shared counter until `n` more tasks than `before` completed.
async fn wait_completed(
    queue: &Queue,
    before: i64,
    n: usize,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let target = before + n as i64;
    loop {
        let c = queue.counters().await?;
        if c.tasks_completed >= target {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!(
                "only {} of {n} tasks completed within {limit:?} ({} failed)",
                c.tasks_completed - before,
                c.tasks_failed
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `redis-benchmark`'s XADD rate on the same server (its default 50
/// clients), `pipeline` commands per round trip; `None` when the tool is
/// missing.
fn redis_benchmark_xadd(port: u16, pipeline: usize, requests: usize) -> Option<f64> {
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-n", &requests.to_string(), "-P", &pipeline.to_string()])
        .args(["--csv"])
        .args([
            "XADD",
            "bench:ceiling",
            "MAXLEN",
            "~",
            "1000",
            "*",
            "f",
            "v",
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("\"XADD"))?;
    line.split("\",\"").nth(1)?.trim_matches('"').parse().ok()
}

/// CPU time per task of each process in a run, in microseconds: where
/// the machine's two cores went.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct CpuPerTask {
    worker: f64,
    redis: Option<f64>,
    /// Redis's AOF rewrite children (those it reaped within the run).
    redis_rewrites: Option<f64>,
    client: f64,
}

/// CPU seconds so far: the worker, Redis and its reaped children (when
/// Redis is ours), and this process.
type CpuReading = (f64, Option<(f64, f64)>, f64);

struct CpuMeter {
    worker_pid: u32,
    redis_pid: Option<u32>,
    start: CpuReading,
}

impl CpuMeter {
    fn start(worker_pid: u32, redis_pid: Option<u32>) -> Self {
        let start = Self::read(worker_pid, redis_pid);
        Self {
            worker_pid,
            redis_pid,
            start,
        }
    }

    fn read(worker_pid: u32, redis_pid: Option<u32>) -> CpuReading {
        (
            common::cpu_secs(&worker_pid.to_string()),
            redis_pid.map(|p| {
                let pid = p.to_string();
                (common::cpu_secs(&pid), common::children_cpu_secs(&pid))
            }),
            common::cpu_secs("self"),
        )
    }

    fn per_task(&self, tasks: usize) -> CpuPerTask {
        let now = Self::read(self.worker_pid, self.redis_pid);
        let us = |secs: f64| secs * 1e6 / tasks as f64;
        let redis = now.1.zip(self.start.1);
        CpuPerTask {
            worker: us(now.0 - self.start.0),
            redis: redis.map(|(b, a)| us(b.0 - a.0)),
            redis_rewrites: redis.map(|(b, a)| us(b.1 - a.1)),
            client: us(now.2 - self.start.2),
        }
    }
}

fn print(args: &QueueBenchArgs, f: &Figures) -> anyhow::Result<()> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(f)?);
        return Ok(());
    }
    let rate = |v: Option<f64>| {
        v.map_or_else(
            || "n/a (no redis-benchmark)".into(),
            |r| format!("{r:>10.0} /s"),
        )
    };
    println!(
        "stratbox bench queue (one worker process, {} slots; submitted in calls of {}, {} at a time)",
        f.slots,
        f.submit_batch,
        f.submit_concurrency
    );
    println!(
        "  redis-benchmark XADD, 64 per round trip   {}  (ceiling)",
        rate(f.redis_xadd_pipelined_per_sec)
    );
    println!(
        "  redis-benchmark XADD, one per round trip  {}",
        rate(f.redis_xadd_unpipelined_per_sec)
    );
    println!(
        "  no-op tasks end to end ({})         {:>10.0} /s  (submitted at {:.0}/s; target >= 20,000)",
        f.noop_tasks, f.noop_tasks_per_sec, f.noop_submit_per_sec
    );
    println!(
        "  100-bar backtests end to end ({})   {:>10.0} /s  (submitted at {:.0}/s; target >= 10,000)",
        f.backtests, f.backtests_per_sec, f.backtest_submit_per_sec
    );
    println!(
        "    {} of them done while submitting; the rest at {}",
        f.backtests_done_while_submitting,
        f.backtest_drain_per_sec
            .map_or_else(|| "n/a".into(), |r| format!("{r:.0}/s once submitted"))
    );
    let cpu = |c: &CpuPerTask| {
        format!(
            "worker {:.1} us, redis {} (+ {} in AOF rewrites), client {:.1} us",
            c.worker,
            c.redis
                .map_or_else(|| "n/a".into(), |r| format!("{r:.1} us")),
            c.redis_rewrites
                .map_or_else(|| "n/a".into(), |r| format!("{r:.1} us")),
            c.client
        )
    };
    println!(
        "    CPU per no-op task:    {}",
        cpu(&f.noop_cpu_us_per_task)
    );
    println!(
        "    CPU per backtest:      {}",
        cpu(&f.backtest_cpu_us_per_task)
    );
    let scripts = |c: &ScriptCosts| {
        format!(
            "submit {:.1} us, fetch {:.1} us, complete {:.1} us",
            c.submit, c.fetch, c.complete
        )
    };
    println!(
        "    Redis CPU per no-op task, each script alone:  {}",
        scripts(&f.redis_us_per_noop)
    );
    println!(
        "    Redis CPU per backtest, each script alone:    {}",
        scripts(&f.redis_us_per_backtest)
    );
    println!(
        "  submit-to-start, light load ({})     p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms  (target p50 < 0.5, p99 < 2)",
        f.latency_samples, f.latency_p50_ms, f.latency_p99_ms, f.latency_max_ms
    );
    println!(
        "  worker RSS                               idle {:.1} MB, after the runs {:.1} MB  (target idle < 30)",
        f.idle_worker_rss_mb, f.loaded_worker_rss_mb
    );
    Ok(())
}
