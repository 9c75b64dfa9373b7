//! Redis latency while a large dead-letter stream is requeued and purged:
//! the p99 of a PING sent from another connection during the operation,
//! and how long each batch (one script call) held Redis.
//!
//! ```text
//! cargo bench -p stratbox --bench dlq -- [--entries 100000] [--batch 200 --batch 100000]
//! ```
//!
//! `--batch` equal to `--entries` runs the whole stream in one script
//! call, as requeue-all and purge did before they were batched.

mod common;

use anyhow::bail;
use clap::Parser;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::PREFIX;
use stratbox_queue::{
    Consumer, Outcome, Queue, QueueConfig, Record, TaskError, TaskSpec, DLQ_BATCH,
};
use stratbox_redis::LocalRedis;

#[derive(Debug, Parser)]
#[command(name = "dlq")]
struct DlqBenchArgs {
    /// Dead-lettered tasks to requeue, then to purge.
    #[arg(long, default_value_t = 100_000)]
    entries: usize,
    /// Entries per script call; repeat to compare sizes in one run
    /// [default: the queue's own].
    #[arg(long)]
    batch: Vec<usize>,
    /// How long the idle PING baseline runs, ms.
    #[arg(long, default_value_t = 1_000)]
    idle_ms: u64,
    #[command(flatten)]
    harness: common::Harness,
}

fn main() -> std::process::ExitCode {
    common::main(|args: DlqBenchArgs| run(&args))
}

fn run(args: &DlqBenchArgs) -> anyhow::Result<()> {
    if args.entries == 0 || args.batch.contains(&0) {
        bail!("--entries and --batch must be at least 1");
    }
    let batches = if args.batch.is_empty() {
        vec![DLQ_BATCH]
    } else {
        args.batch.clone()
    };
    let runtime = common::runtime()?;
    for batch in batches {
        // A fresh server per size: the same data, AOF and memory each time.
        let scratch = common::scratch_dir("dlq");
        let server = LocalRedis::start(&scratch.join("redis"))?;
        let url = server.url();
        let result = runtime.block_on(measure(args, &url, batch));
        drop(server);
        let _ = std::fs::remove_dir_all(&scratch);
        result?;
    }
    Ok(())
}

async fn measure(args: &DlqBenchArgs, url: &str, batch: usize) -> anyhow::Result<()> {
    let queue = Queue::connect(url, PREFIX, QueueConfig::default()).await?;
    let consumer = Consumer::new(queue.clone(), url, "bench-dlq".into()).await?;
    let n = args.entries;
    let began = Instant::now();
    let mut i = 0;
    while i < n {
        let specs: Vec<TaskSpec> = (i..n.min(i + 2_000)).map(mixed).collect();
        i += specs.len();
        queue.submit(&specs).await?;
        fail_all(&consumer, specs.len()).await?;
    }
    println!(
        "batch {batch}: {n} DLQ entries seeded in {:.1} s",
        began.elapsed().as_secs_f64()
    );
    let idle = Pinger::start(url)?;
    tokio::time::sleep(Duration::from_millis(args.idle_ms)).await;
    report("idle", n, batch, Duration::ZERO, idle.stop(), &[]);

    watch_scripts(url)?;
    let pinger = Pinger::start(url)?;
    let began = Instant::now();
    let requeued = queue.requeue_all_by(batch).await?;
    let took = began.elapsed();
    let pings = pinger.stop();
    anyhow::ensure!(requeued == n as u64, "requeued {requeued} of {n}");
    report("requeue", n, batch, took, pings, &script_runs(url)?);

    fail_all(&consumer, n).await?;
    watch_scripts(url)?;
    let pinger = Pinger::start(url)?;
    let began = Instant::now();
    let purged = queue.purge_dlq_by(batch).await?;
    let took = began.elapsed();
    let pings = pinger.stop();
    anyhow::ensure!(purged == n as u64, "purged {purged} of {n}");
    report("purge", n, batch, took, pings, &script_runs(url)?);
    Ok(())
}

/// The test's mix: a third hosted by a record, a third mirrored into
/// one, half holding a set.
fn mixed(i: usize) -> TaskSpec {
    let mut spec = TaskSpec::new("noop", "{}".into());
    match i % 3 {
        0 => {
            let mut r = Record::new(format!("{PREFIX}:rec:h{i}"), "report");
            r.hosts_task = true;
            spec.record = Some(r);
        }
        1 => {
            spec.priority = 1;
            spec.record = Some(Record::new(format!("{PREFIX}:rec:m{i}"), "report"));
        }
        _ => spec.priority = 9,
    }
    if i.is_multiple_of(2) {
        spec.holds = Some(format!("{PREFIX}:plugin:tasks"));
    }
    spec
}

/// Takes `n` tasks and fails them for good: `n` DLQ entries.
async fn fail_all(consumer: &Consumer, n: usize) -> anyhow::Result<()> {
    let mut left = n;
    while left > 0 {
        let ds = consumer.fetch(left.min(2_000), false).await?;
        anyhow::ensure!(!ds.is_empty(), "{left} tasks never came");
        left -= ds.len();
        let failed: Vec<_> = ds
            .iter()
            .map(|d| {
                let error = TaskError::permanent("strategy_trap", "bench");
                (d.into(), Outcome::Failed(error))
            })
            .collect();
        consumer.complete(&failed).await?;
    }
    Ok(())
}

/// Logs every script call of at least 100 µs from now on.
fn watch_scripts(url: &str) -> anyhow::Result<()> {
    let mut conn = redis::Client::open(url)?.get_connection()?;
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("slowlog-log-slower-than")
        .arg(100)
        .arg("slowlog-max-len")
        .arg(1_000_000)
        .exec(&mut conn)?;
    redis::cmd("SLOWLOG").arg("RESET").exec(&mut conn)?;
    Ok(())
}

/// How long each script call logged since [`watch_scripts`] ran, µs.
fn script_runs(url: &str) -> anyhow::Result<Vec<u64>> {
    let mut conn = redis::Client::open(url)?.get_connection()?;
    let log: Vec<redis::Value> = redis::cmd("SLOWLOG").arg("GET").arg(-1).query(&mut conn)?;
    let mut runs = Vec::new();
    for entry in log {
        let redis::Value::Array(fields) = entry else {
            continue;
        };
        let (Some(redis::Value::Int(us)), Some(redis::Value::Array(argv))) =
            (fields.get(2), fields.get(3))
        else {
            continue;
        };
        let command = match argv.first() {
            Some(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            _ => continue,
        };
        if command.eq_ignore_ascii_case("evalsha") || command.eq_ignore_ascii_case("eval") {
            runs.push(*us as u64);
        }
    }
    Ok(runs)
}

/// PINGs Redis from a thread and a connection of their own, one every
/// ~0.2 ms, until stopped; returns each round trip.
struct Pinger {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<redis::RedisResult<Vec<Duration>>>,
}

impl Pinger {
    fn start(url: &str) -> anyhow::Result<Pinger> {
        let mut conn = redis::Client::open(url)?.get_connection()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut took = Vec::new();
            while !stopping.load(Ordering::Relaxed) {
                let t = Instant::now();
                redis::cmd("PING").exec(&mut conn)?;
                took.push(t.elapsed());
                std::thread::sleep(Duration::from_micros(200));
            }
            Ok(took)
        });
        Ok(Pinger { stop, thread })
    }

    fn stop(self) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.join() {
            Ok(Ok(took)) => took,
            Ok(Err(e)) => panic!("PING failed: {e}"),
            Err(_) => panic!("the PING thread panicked"),
        }
    }
}

fn quantile<T: Copy + Ord>(sorted: &[T], q: f64) -> Option<T> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((last as f64) * q).round() as usize])
}

fn report(
    op: &str,
    n: usize,
    batch: usize,
    took: Duration,
    mut pings: Vec<Duration>,
    runs: &[u64],
) {
    pings.sort_unstable();
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    let mut line = format!(
        "batch {batch}: {op:<7} {n} entries in {:>7.1} ms | PING p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms ({} PINGs)",
        took.as_secs_f64() * 1e3,
        ms(quantile(&pings, 0.5)),
        ms(quantile(&pings, 0.99)),
        ms(pings.last().copied()),
        pings.len(),
    );
    if op != "idle" {
        let mut runs = runs.to_vec();
        runs.sort_unstable();
        let us = |v: Option<u64>| v.map_or(f64::NAN, |v| v as f64 / 1e3);
        line += &format!(
            " | script calls >= 0.1 ms: {}, p50 {:.3} ms, max {:.3} ms",
            runs.len(),
            us(quantile(&runs, 0.5)),
            us(runs.last().copied()),
        );
    }
    println!("{line}");
}
