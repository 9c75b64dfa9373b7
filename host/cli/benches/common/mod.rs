//! What the benches of the `stratbox` package share: the driver of a
//! bench's `main`, the `stratbox` binary they start, a worker process,
//! CPU and memory read from /proc, and the seeding of a backtest.
//!
//! Each bench is a `harness = false` target that measures the real
//! binary, as the e2e tests drive it:
//!
//! ```text
//! cargo bench -p stratbox --bench queue -- --plugin path/to/ema-crossover.wasm
//! ```
//!
//! `cargo test -p stratbox --benches` runs the checks of the pure helpers
//! below (see [`main`]).

// Each bench uses a part of this module.
#![allow(dead_code)]

use anyhow::{anyhow, bail, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use stratbox_engine::candles;
use stratbox_queue::Queue;
use stratbox_sandbox::{Sandbox, SandboxConfig};
use stratbox_store::{BacktestDefinition, Store};

/// The allocator of the `stratbox` binary (mimalloc, without transparent
/// huge pages), so what a bench runs in its own process (the submitting
/// client, the load generator, the local optimizations) allocates as the
/// binary does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Key prefix of the benches' Redis data.
pub const PREFIX: &str = "bench";

/// Flags every bench takes besides its own.
#[derive(Debug, clap::Args)]
pub struct Harness {
    /// The `stratbox` binary to drive [default: the one Cargo built with
    /// this bench].
    #[arg(long, value_name = "PATH")]
    pub stratbox: Option<PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

impl Harness {
    /// The binary whose worker, server or autoscaler the bench starts.
    pub fn exe(&self) -> PathBuf {
        self.stratbox
            .clone()
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_stratbox")))
    }
}

/// A bench's `main`: parses its flags and runs it; on failure prints
/// `error: ...` and exits 1 (2 for bad flags, from clap).
///
/// `cargo test --benches` (and `--all-targets`) runs a `harness = false`
/// bench too, without the `--bench` that `cargo bench` passes and without
/// the libtest harness that would find `#[test]` functions. Such a run
/// checks the pure helpers of this module instead of measuring: it is a
/// run with neither `--bench` nor `--plugin` (which every bench requires)
/// nor `--help`.
pub fn main<A: clap::Parser>(run: impl FnOnce(A) -> anyhow::Result<()>) -> ExitCode {
    // Every reqwest client takes its TLS from it (see the binary's main).
    stratbox_marketdata::install_tls_provider();
    let measure = std::env::args().skip(1).any(|a| {
        matches!(a.as_str(), "--bench" | "--plugin" | "-h" | "--help") || a.starts_with("--plugin=")
    });
    if !measure {
        run_checks();
        return ExitCode::SUCCESS;
    }
    match run(A::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The checks of the pure helpers, by name; a failed one panics, so the
/// run exits non-zero.
const CHECKS: &[(&str, fn())] = &[(
    "batches_cover_the_total_once",
    checks::batches_cover_the_total_once,
)];

fn run_checks() {
    let bench = std::env::args()
        .next()
        .map(|a| {
            Path::new(&a)
                .file_name()
                .map_or(a.clone(), |n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_default();
    let n = CHECKS.len();
    let s = if n == 1 { "" } else { "s" };
    println!(
        "\nrunning {n} check{s} of the bench helpers ({bench} without --bench: no measurement)"
    );
    for (name, check) in CHECKS {
        check();
        println!("check common::{name} ... ok");
    }
    println!("\ncheck result: ok. {n} passed\n");
}

mod checks {
    use super::batch_sizes;

    pub fn batches_cover_the_total_once() {
        assert_eq!(batch_sizes(300, 7).iter().sum::<usize>(), 300);
        assert_eq!(batch_sizes(300, 7).len(), 43);
        assert_eq!(batch_sizes(300, 7).last(), Some(&6));
        assert_eq!(batch_sizes(2_000, 1_000), vec![1_000, 1_000]);
        assert_eq!(batch_sizes(5, 1_000), vec![5]);
    }
}

/// `total` split into calls of at most `batch` (at least 1).
pub fn batch_sizes(total: usize, batch: usize) -> Vec<usize> {
    (0..total)
        .step_by(batch)
        .map(|first| batch.min(total - first))
        .collect()
}

/// The async runtime of a bench: one worker thread per core.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The bytes of `--plugin`.
pub fn read_plugin(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("--plugin: cannot read {}", path.display()))
}

/// A scratch directory of this run, `stratbox-bench-<name>-<pid>` in the
/// temporary directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("stratbox-bench-{name}-{}", std::process::id()))
}

/// Stores the plugin and `bars` synthetic candles of `BENCH` under the
/// bench prefix, and returns a backtest of all of them.
pub async fn seed_backtest(
    store: &Store,
    plugin: &[u8],
    scratch: &Path,
    bars: usize,
    timeframe_secs: i64,
    params: BTreeMap<String, serde_json::Value>,
) -> anyhow::Result<BacktestDefinition> {
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(scratch.join("cache")),
        ..SandboxConfig::default()
    })?;
    let loaded = sandbox.load(plugin)?;
    let d = &loaded.description;
    store
        .put_plugin(&loaded.sha256, plugin, &d.name, &d.version, d)
        .await?;
    let data = candles::synth(bars, 42, timeframe_secs, 1_704_067_200, 42_000.0);
    store.import_candles("BENCH", timeframe_secs, &data).await?;
    Ok(BacktestDefinition {
        strategy_sha256: loaded.sha256.clone(),
        strategy_id: None,
        name: None,
        symbol: "BENCH".into(),
        symbols: Vec::new(),
        timeframe_secs,
        start_ts: data.ts[0],
        end_ts: data.ts[data.len() - 1],
        initial_capital: 10_000.0,
        commission: 0.0006,
        leverage: 1.0,
        slippage_bps: 0.0,
        params,
        market: Default::default(),
        funding_rate: None,
        limits: Default::default(),
    })
}

/// A memory line of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), in MB.
pub fn status_mb(pid: u32, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no {field} for pid {pid}"))?;
    Ok(kb / 1024.0)
}

/// User plus system CPU seconds of a process (`/proc/<pid>/stat`).
pub fn cpu_secs(pid: &str) -> f64 {
    stat_ticks(pid, 11) / 100.0
}

/// CPU seconds of the children `pid` has waited for (Redis's AOF
/// rewrites and snapshots: it reaps each when it ends).
pub fn children_cpu_secs(pid: &str) -> f64 {
    stat_ticks(pid, 13) / 100.0
}

/// Two consecutive tick counters of `/proc/<pid>/stat`, summed, counted
/// from the first field after the parenthesised command name: 11 is
/// utime + stime (the line's 14th and 15th fields), 13 cutime + cstime.
/// Clock ticks are 100 per second; 0 when the process is gone.
fn stat_ticks(pid: &str, first: usize) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    ticks(first) + ticks(first + 1)
}

/// A `stratbox worker` process on the bench prefix; killed on drop.
pub struct WorkerProcess {
    child: Option<Child>,
}

impl WorkerProcess {
    /// Starts `exe worker` with `slots` task slots against `url`, logging
    /// to `scratch/worker.log`.
    pub fn spawn(exe: &Path, url: &str, slots: usize, scratch: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(scratch)?;
        let log = std::fs::File::create(scratch.join("worker.log"))?;
        let child = Command::new(exe)
            .args(["worker", "--workers", &slots.to_string()])
            .env("REDIS_URL", url)
            .env("STRATBOX_PREFIX", PREFIX)
            .env("STRATBOX_CACHE_DIR", scratch.join("cache"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start the worker ({})", exe.display()))?;
        Ok(Self { child: Some(child) })
    }

    pub async fn wait_ready(&mut self, queue: &Queue) -> anyhow::Result<()> {
        let started = Instant::now();
        while queue.workers().await?.is_empty() {
            if started.elapsed() > Duration::from_secs(30) {
                bail!("the worker sent no heartbeat within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn rss_mb(&self) -> anyhow::Result<f64> {
        let pid = self
            .child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| anyhow!("worker gone"))?;
        status_mb(pid, "VmRSS")
    }

    /// SIGTERM and the graceful exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
            let status = child.wait()?;
            if !status.success() {
                bail!("the worker exited with {status}");
            }
        }
        Ok(())
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
