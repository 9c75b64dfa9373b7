//! A 1,000-combination grid of ema-crossover over a year of hourly bars,
//! locally on every core (the WASM plugin and, for scale, the native
//! reference, both in this process) and through the queue with one worker
//! process (the `stratbox` binary), whose peak RSS (VmHWM) is read from
//! /proc.
//!
//! ```text
//! cargo bench -p stratbox --bench optimize -- --plugin path/to/ema-crossover.wasm
//! ```
//!
//! With `--walk-forward`: instead, a walk-forward of 12 windows of the
//! same grid over two years of hourly bars against the same combinations
//! run as 12 plain optimizations of the train windows, interleaved.

mod common;

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use common::{cpu_secs, WorkerProcess, PREFIX};
use stratbox_engine::candles::{self, Candles};
use stratbox_engine::optimize::{
    self, Combination, DimensionSpec, Direction, Method, ReferenceFactory, StrategyFactory,
};
use stratbox_engine::BacktestConfig;
use stratbox_queue::{Queue, QueueConfig};
use stratbox_redis::LocalRedis;
use stratbox_sandbox::{PluginFactory, Sandbox, SandboxConfig};
use stratbox_service::tasks::optimization::{submit_optimization, OptimizationRequest};
use stratbox_service::tasks::SubmitOptions;
use stratbox_store::{BacktestDefinition, BacktestStatus, Store};

/// Optimization figures: a 1,000-combination grid locally and through
/// the queue, and the worker's peak memory.
#[derive(Debug, Parser)]
#[command(name = "optimize")]
struct OptimizeBenchArgs {
    /// The ema-crossover component.
    #[arg(long)]
    plugin: PathBuf,
    /// Candle CSV to sweep over (default: 8,760 synthetic hourly bars, seed 1,
    /// as `stratbox candles synth --bars 8760 --seed 1 --timeframe 1h`).
    #[arg(long)]
    candles: Option<PathBuf>,
    /// Runs of each local measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Task slots of the worker process.
    #[arg(long, default_value_t = 2)]
    slots: usize,
    /// Skip the queue run (no redis-server needed).
    #[arg(long)]
    no_queue: bool,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    /// Measure a walk-forward's overhead instead (12 windows: train 8,760
    /// bars, test 730, over 17,520 synthetic hourly bars).
    #[arg(long)]
    walk_forward: bool,
    #[command(flatten)]
    harness: common::Harness,
}

fn main() -> ExitCode {
    common::main(|args: OptimizeBenchArgs| run(&args))
}

/// The grid: fast 5..=50 step 5 (10 values) x slow 20..=515 step 5 (100),
/// the same as `scripts/bench-optimize.sh` gives backtesting.py.
fn space() -> BTreeMap<String, DimensionSpec> {
    BTreeMap::from([
        (
            "fast_period".to_string(),
            DimensionSpec::Range {
                min: 5.0,
                max: 50.0,
                step: Some(5.0),
            },
        ),
        (
            "slow_period".to_string(),
            DimensionSpec::Range {
                min: 20.0,
                max: 515.0,
                step: Some(5.0),
            },
        ),
    ])
}

#[derive(Debug, serde::Serialize)]
struct Figures {
    bars: usize,
    combinations: usize,
    threads: usize,
    reps: usize,
    local_wasm_secs: f64,
    local_wasm_combos_per_sec: f64,
    /// CPU (user + system, every thread) per combination: what the machine
    /// can do when nothing else runs is `threads / cpu`.
    local_wasm_cpu_ms_per_combo: f64,
    local_native_secs: f64,
    local_native_combos_per_sec: f64,
    local_native_cpu_ms_per_combo: f64,
    queue_slots: Option<usize>,
    queue_chunks: Option<usize>,
    queue_secs: Option<f64>,
    queue_combos_per_sec: Option<f64>,
    /// Worker process CPU per combination (chunks, Redis I/O, the reduce).
    queue_worker_cpu_ms_per_combo: Option<f64>,
    /// VmHWM during the timed sweep only (reset after the warm-up).
    worker_peak_rss_mb: Option<f64>,
    /// VmHWM from start through the warm-up.
    worker_peak_rss_before_sweep_mb: Option<f64>,
    best: String,
}

fn run(args: &OptimizeBenchArgs) -> anyhow::Result<()> {
    if args.reps == 0 || args.slots == 0 {
        bail!("--reps and --slots must be at least 1");
    }
    let bytes = common::read_plugin(&args.plugin)?;
    if args.walk_forward {
        return walk_forward(args, &bytes);
    }
    let candles = match &args.candles {
        Some(path) => load_csv(path)?,
        None => candles::synth(8_760, 1, 3_600, 1_704_067_200, 42_000.0),
    };
    let figures = measure(args, &bytes, &candles)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
        return Ok(());
    }
    let f = &figures;
    println!(
        "stratbox bench optimize ({} combinations of ema-crossover, {} hourly bars, median of {})",
        f.combinations, f.bars, f.reps
    );
    println!(
        "  local, wasm plugin    {:>8.0} combinations/s  ({:.2} s on {} threads, {:.3} ms CPU each)",
        f.local_wasm_combos_per_sec,
        f.local_wasm_secs,
        f.threads,
        f.local_wasm_cpu_ms_per_combo
    );
    println!(
        "  local, native ref.    {:>8.0} combinations/s  ({:.2} s, {:.3} ms CPU each)",
        f.local_native_combos_per_sec, f.local_native_secs, f.local_native_cpu_ms_per_combo
    );
    if let (Some(rate), Some(secs), Some(slots), Some(chunks)) = (
        f.queue_combos_per_sec,
        f.queue_secs,
        f.queue_slots,
        f.queue_chunks,
    ) {
        println!(
            "  queue, 1 worker       {:>8.0} combinations/s  ({:.2} s, {} slots, {} chunks, {:.3} ms worker CPU each)",
            rate,
            secs,
            slots,
            chunks,
            f.queue_worker_cpu_ms_per_combo.unwrap_or(f64::NAN)
        );
    }
    if let (Some(rss), Some(warm)) = (f.worker_peak_rss_mb, f.worker_peak_rss_before_sweep_mb) {
        println!(
            "  worker peak RSS       {:>8.1} MB during the sweep (VmHWM; {:.1} MB through start-up and warm-up)",
            rss,
            warm
        );
    }
    println!("  best by Sharpe        {}", f.best);
    Ok(())
}

#[derive(Debug, serde::Serialize)]
struct WalkForwardFigures {
    bars: usize,
    windows: usize,
    combinations_per_window: usize,
    threads: usize,
    reps: usize,
    /// Medians: 12 plain optimizations of the train windows, and the
    /// walk-forward (the same runs, the ranking, the test runs, the
    /// stitched account).
    plain_secs: f64,
    walk_forward_secs: f64,
    /// The median of the reps' own overheads (each walk-forward against
    /// the plain run beside it), not the ratio of two medians.
    overhead_pct: f64,
    /// The walk-forward's only work beyond the plain runs: the report
    /// (each window's test run and the stitched account), median.
    report_secs: f64,
    /// The report over the walk-forward's in-sample sweeps, median: the
    /// overhead without the sweeps' noise.
    report_pct: f64,
    /// Every rep: plain, walk-forward, its report, and which ran first.
    runs: Vec<Rep>,
    efficiency: Option<f64>,
}

#[derive(Debug, serde::Serialize)]
struct Rep {
    plain_secs: f64,
    walk_forward_secs: f64,
    report_secs: f64,
    walk_forward_first: bool,
}

/// The walk-forward's overhead over the same in-sample runs done as
/// plain optimizations, the two interleaved rep by rep and in turns
/// first (the host is noisy, and whichever runs second in a rep may find
/// the machine in another state).
fn walk_forward(args: &OptimizeBenchArgs, bytes: &[u8]) -> anyhow::Result<()> {
    use stratbox_engine::optimize::walkforward::{self, Length, WalkForward};
    let candles = match &args.candles {
        Some(path) => load_csv(path)?,
        None => candles::synth(17_520, 1, 3_600, 1_704_067_200, 42_000.0),
    };
    let spec = WalkForward {
        train: Length::Bars(8_760),
        test: Length::Bars(730),
        step: None,
        anchored: false,
    };
    let windows = spec.windows(candles.len(), 3_600)?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (sandbox, plugin) = load_in_memory(bytes)?;
    let factory = PluginFactory::new(&sandbox, plugin.clone());
    let combos = grid(&plugin)?;
    let objective = optimize::Objective::new("sharpe", Direction::Maximize, 0)?;
    let config = BacktestConfig::default();
    let evaluate = |train: &Candles| {
        optimize::evaluate(
            &factory,
            &combos,
            train,
            None,
            &config,
            threads,
            &|_| {},
            &stratbox_sandbox::is_fatal,
        )
    };
    let plain = || -> anyhow::Result<f64> {
        let started = Instant::now();
        for w in &windows {
            let train = walkforward::slice(&candles, w.train.clone());
            let rows = evaluate(&train)?;
            std::hint::black_box(optimize::rank(&objective, rows));
        }
        Ok(started.elapsed().as_secs_f64())
    };
    let walked = || -> anyhow::Result<(f64, f64, Option<f64>)> {
        let started = Instant::now();
        let mut tables = Vec::with_capacity(windows.len());
        for w in &windows {
            let train = walkforward::slice(&candles, w.train.clone());
            tables.push(optimize::rank(&objective, evaluate(&train)?));
        }
        let reported = Instant::now();
        let report = walkforward::report(&factory, &candles, &spec, &windows, &tables, &config)?;
        let report_secs = reported.elapsed().as_secs_f64();
        Ok((
            started.elapsed().as_secs_f64(),
            report_secs,
            report.efficiency,
        ))
    };
    let mut runs = Vec::with_capacity(args.reps);
    let mut efficiency = None;
    for rep in 0..args.reps {
        let walk_forward_first = rep % 2 == 1;
        let (plain_secs, (walk_forward_secs, report_secs, eff)) = if walk_forward_first {
            let w = walked()?;
            (plain()?, w)
        } else {
            (plain()?, walked()?)
        };
        efficiency = eff;
        runs.push(Rep {
            plain_secs,
            walk_forward_secs,
            report_secs,
            walk_forward_first,
        });
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let overhead = |r: &Rep| (r.walk_forward_secs / r.plain_secs - 1.0) * 100.0;
    let report_share =
        |r: &Rep| r.report_secs / (r.walk_forward_secs - r.report_secs).max(1e-9) * 100.0;
    let f = WalkForwardFigures {
        bars: candles.len(),
        windows: windows.len(),
        combinations_per_window: combos.len(),
        threads,
        reps: args.reps,
        plain_secs: median(runs.iter().map(|r| r.plain_secs).collect()),
        walk_forward_secs: median(runs.iter().map(|r| r.walk_forward_secs).collect()),
        overhead_pct: median(runs.iter().map(overhead).collect()),
        report_secs: median(runs.iter().map(|r| r.report_secs).collect()),
        report_pct: median(runs.iter().map(report_share).collect()),
        runs,
        efficiency,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&f)?);
        return Ok(());
    }
    println!(
        "stratbox bench optimize --walk-forward ({} windows of {} combinations of ema-crossover, {} hourly bars, median of {}, {} threads)",
        f.windows, f.combinations_per_window, f.bars, f.reps, f.threads
    );
    println!(
        "  plain optimizations of the train windows  {:>8.2} s",
        f.plain_secs
    );
    println!(
        "  walk-forward                              {:>8.2} s  ({:+.2} %, the median of the reps' own)",
        f.walk_forward_secs, f.overhead_pct
    );
    println!(
        "  of which the report                       {:>8.2} ms ({:.2} % of its sweeps)",
        f.report_secs * 1e3,
        f.report_pct
    );
    for (i, r) in f.runs.iter().enumerate() {
        println!(
            "    rep {}: plain {:.2} s, walk-forward {:.2} s ({:+.2} %; report {:.2} ms){}",
            i + 1,
            r.plain_secs,
            r.walk_forward_secs,
            overhead(r),
            r.report_secs * 1e3,
            if r.walk_forward_first {
                ", walk-forward first"
            } else {
                ""
            }
        );
    }
    Ok(())
}

/// The candles of a CSV file, as `stratbox` reads them.
fn load_csv(path: &Path) -> anyhow::Result<Candles> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read candles from {}", path.display()))?;
    candles::parse_csv(&text).with_context(|| format!("invalid candles in {}", path.display()))
}

fn time_local(
    factory: &dyn StrategyFactory,
    combos: &[Combination],
    candles: &Candles,
    threads: usize,
    reps: usize,
) -> anyhow::Result<(f64, f64, Vec<optimize::Row>)> {
    let config = BacktestConfig::default();
    let mut secs = Vec::with_capacity(reps);
    let mut rows = Vec::new();
    let cpu_before = cpu_secs("self");
    for _ in 0..reps {
        let started = Instant::now();
        rows = optimize::evaluate(
            factory,
            combos,
            candles,
            None,
            &config,
            threads,
            &|_| {},
            &stratbox_sandbox::is_fatal,
        )?;
        secs.push(started.elapsed().as_secs_f64());
    }
    let cpu_ms = (cpu_secs("self") - cpu_before) * 1e3 / (reps * combos.len().max(1)) as f64;
    secs.sort_by(f64::total_cmp);
    Ok((secs[secs.len() / 2], cpu_ms, rows))
}

/// A sandbox with no disk cache, and the plugin loaded (compiled) in it.
fn load_in_memory(
    bytes: &[u8],
) -> anyhow::Result<(Sandbox, std::sync::Arc<stratbox_sandbox::Plugin>)> {
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: None,
        ..SandboxConfig::default()
    })
    .context("cannot start the sandbox")?;
    let plugin = sandbox.load(bytes).context("cannot load the plugin")?;
    Ok((sandbox, plugin))
}

/// The bench's 1,000 combinations of the plugin's params.
fn grid(plugin: &stratbox_sandbox::Plugin) -> anyhow::Result<Vec<Combination>> {
    Ok(optimize::combinations(
        &plugin.description.params,
        &BTreeMap::new(),
        &space(),
        Method::Grid,
        None,
        optimize::DEFAULT_MAX_COMBINATIONS,
    )?)
}

fn measure(args: &OptimizeBenchArgs, bytes: &[u8], candles: &Candles) -> anyhow::Result<Figures> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // No shared compiled-code cache: the worker compiles the plugin
    // itself, as a fresh worker does, so its peak RSS includes that.
    let (sandbox, plugin) = load_in_memory(bytes)?;
    let wasm = PluginFactory::new(&sandbox, plugin.clone());
    let combos = grid(&plugin)?;
    let (wasm_secs, wasm_cpu_ms, rows) = time_local(&wasm, &combos, candles, threads, args.reps)?;
    let native = ReferenceFactory::new("ema-crossover").ok_or_else(|| anyhow!("no reference"))?;
    let (native_secs, native_cpu_ms, _) =
        time_local(&native, &combos, candles, threads, args.reps)?;
    let objective = optimize::Objective::new("sharpe", Direction::Maximize, 0)?;
    let table = optimize::rank(&objective, rows);
    let best = table
        .top(1)
        .first()
        .map(|r| {
            let params: Vec<String> = r
                .row
                .params
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            format!(
                "{} (sharpe {:.3})",
                params.join(" "),
                r.score.unwrap_or(f64::NAN)
            )
        })
        .unwrap_or_default();
    let n = combos.len() as f64;
    let mut figures = Figures {
        bars: candles.len(),
        combinations: combos.len(),
        threads,
        reps: args.reps,
        local_wasm_secs: wasm_secs,
        local_wasm_combos_per_sec: n / wasm_secs,
        local_wasm_cpu_ms_per_combo: wasm_cpu_ms,
        local_native_secs: native_secs,
        local_native_combos_per_sec: n / native_secs,
        local_native_cpu_ms_per_combo: native_cpu_ms,
        queue_slots: None,
        queue_chunks: None,
        queue_secs: None,
        queue_combos_per_sec: None,
        queue_worker_cpu_ms_per_combo: None,
        worker_peak_rss_mb: None,
        worker_peak_rss_before_sweep_mb: None,
        best,
    };
    if !args.no_queue {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        let (secs, chunks, worker_cpu, rss, warm_peak) =
            runtime.block_on(through_queue(args, bytes, &plugin.description, candles))?;
        figures.queue_slots = Some(args.slots);
        figures.queue_chunks = Some(chunks);
        figures.queue_secs = Some(secs);
        figures.queue_combos_per_sec = Some(n / secs);
        figures.queue_worker_cpu_ms_per_combo = Some(worker_cpu * 1e3 / n);
        figures.worker_peak_rss_mb = Some(rss);
        figures.worker_peak_rss_before_sweep_mb = Some(warm_peak);
    }
    let _ = std::fs::remove_dir_all(scratch_dir());
    Ok(figures)
}

/// Submit to completed (table written) of the grid through a private
/// Redis and one worker process, after a small warm-up optimization (the
/// worker compiles the plugin and caches the candles once).
async fn through_queue(
    args: &OptimizeBenchArgs,
    bytes: &[u8],
    description: &stratbox_engine::Description,
    candles: &Candles,
) -> anyhow::Result<(f64, usize, f64, f64, f64)> {
    let scratch = scratch_dir();
    let server = LocalRedis::start(&scratch.join("redis"))?;
    let url = server.url();
    let store = Store::connect(&url, PREFIX).await?;
    let queue = Queue::connect(&url, PREFIX, QueueConfig::default()).await?;
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes));
    store
        .put_plugin(
            &sha,
            bytes,
            &description.name,
            &description.version,
            description,
        )
        .await?;
    store.import_candles("BENCH", 3_600, candles).await?;
    let (first, last) = match (candles.ts.first(), candles.ts.last()) {
        (Some(a), Some(b)) => (*a, *b),
        _ => bail!("no candles"),
    };
    let mut worker = WorkerProcess::spawn(&args.harness.exe(), &url, args.slots, &scratch)?;
    worker.wait_ready(&queue).await?;
    let request = |space: BTreeMap<String, DimensionSpec>| OptimizationRequest {
        backtest: BacktestDefinition {
            strategy_sha256: sha.clone(),
            strategy_id: None,
            name: None,
            symbol: "BENCH".into(),
            symbols: Vec::new(),
            timeframe_secs: 3_600,
            start_ts: first,
            end_ts: last,
            initial_capital: 10_000.0,
            commission: 0.0006,
            leverage: 1.0,
            slippage_bps: 0.0,
            params: BTreeMap::new(),
            market: Default::default(),
            funding_rate: None,
            limits: Default::default(),
        },
        search_space: space
            .into_iter()
            .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or_default()))
            .collect(),
        method: "grid".into(),
        samples: None,
        batch: None,
        startup: None,
        seed: 0,
        metric: "sharpe".into(),
        direction: Direction::Maximize,
        min_trades: 0,
        constraint: None,
        holdout: None,
        walk_forward: None,
        max_combinations: None,
    };
    let warm = BTreeMap::from([(
        "fast_period".to_string(),
        DimensionSpec::Values(vec![5.into(), 10.into()]),
    )]);
    let (id, _) =
        submit_optimization(&store, &queue, &request(warm), &SubmitOptions::default()).await?;
    wait(&store, id).await?;
    let pid = worker.pid().to_string();
    // The peak so far includes the warm-up's compile; "5" resets VmHWM to
    // the current RSS, so what is read after is the sweep's own peak.
    let warm_peak = peak_rss_mb(worker.pid())?;
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5")
        .context("cannot reset the worker's peak RSS")?;
    let cpu_before = cpu_secs(&pid);
    let started = Instant::now();
    let (id, _) =
        submit_optimization(&store, &queue, &request(space()), &SubmitOptions::default()).await?;
    let chunks = wait(&store, id).await?;
    let secs = started.elapsed().as_secs_f64();
    let worker_cpu = cpu_secs(&pid) - cpu_before;
    let rss = peak_rss_mb(worker.pid())?;
    worker.stop()?;
    drop(server);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok((secs, chunks, worker_cpu, rss, warm_peak))
}

fn scratch_dir() -> PathBuf {
    common::scratch_dir("optimize")
}

async fn wait(store: &Store, id: u64) -> anyhow::Result<usize> {
    let started = Instant::now();
    loop {
        let r = store
            .get_optimization(id)
            .await?
            .ok_or_else(|| anyhow!("optimization {id} vanished"))?;
        match r.status {
            BacktestStatus::Completed => return Ok(r.chunks),
            s if s.is_terminal() => bail!("optimization {id} ended {s}: {:?}", r.error),
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(600) {
            bail!("optimization {id} did not finish in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// VmHWM: the peak resident set of the process so far.
fn peak_rss_mb(pid: u32) -> anyhow::Result<f64> {
    common::status_mb(pid, "VmHWM")
}
