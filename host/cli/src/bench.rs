//! `stratbox bench`: the figures of the README, measured side by side in
//! one process so machine noise hits both sides alike.

use anyhow::{anyhow, Context};
use clap::Args;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{CliError, CliResult};
use stratbox_engine::candles::{self, Candles};
use stratbox_engine::reference::EmaCrossover;
use stratbox_engine::{self as engine, BacktestConfig, Params};
use stratbox_sandbox::{CancelToken, NanCanonicalization, RunLimits, Sandbox, SandboxConfig};

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: Option<BenchCommand>,
    /// The ema-crossover component (required for the engine figures).
    #[arg(long)]
    plugin: Option<PathBuf>,
    /// One-minute bars in the throughput run.
    #[arg(long, default_value_t = 1_000_000)]
    bars: usize,
    /// Repetitions of each measurement (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Instantiations timed for the instantiation median.
    #[arg(long, default_value_t = 1_000)]
    instantiations: usize,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
    /// Where NaNs are made canonical, to measure what each way costs (runs
    /// use `at-observation`; `off` may give different results per CPU).
    #[arg(long, value_enum, default_value_t = NanMode::AtObservation)]
    nan_canonicalization: NanMode,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum NanMode {
    AtObservation,
    EveryOperation,
    Off,
}

impl NanMode {
    fn name(self) -> &'static str {
        match self {
            Self::AtObservation => "at-observation",
            Self::EveryOperation => "every-operation",
            Self::Off => "off",
        }
    }

    fn sandbox(self) -> NanCanonicalization {
        match self {
            Self::AtObservation => NanCanonicalization::AtObservation,
            Self::EveryOperation => NanCanonicalization::EveryOperation,
            Self::Off => NanCanonicalization::Off,
        }
    }
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// Queue figures end to end: no-op and tiny-backtest throughput through
    /// a worker process, submit-to-start latency, worker memory.
    Queue(super::bench_queue::QueueBenchArgs),
    /// Optimization figures: a 1,000-combination grid locally and through
    /// the queue, and the worker's peak memory.
    Optimize(super::bench_optimize::OptimizeBenchArgs),
    /// Sustained create-and-run submissions against one API process:
    /// rate and latency, measured by a load generator on loopback.
    Api(super::bench_api::ApiBenchArgs),
    /// How fast `stratbox autoscale` reacts: a burst that breaks the SLA,
    /// until the added workers take tasks; quiet, until it is back at min.
    Autoscale(super::bench_autoscale::AutoscaleBenchArgs),
}

/// CPU time this thread has used so far (nanosecond clock; `getrusage`
/// counts in scheduler ticks, too coarse for a 20 ms run).
fn thread_cpu() -> anyhow::Result<Duration> {
    use nix::time::{clock_gettime, ClockId};
    let t = clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)?;
    Ok(Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

pub fn run(args: &BenchArgs) -> CliResult {
    match &args.what {
        Some(BenchCommand::Queue(queue)) => return super::bench_queue::run(queue),
        Some(BenchCommand::Optimize(optimize)) => return super::bench_optimize::run(optimize),
        Some(BenchCommand::Api(api)) => return super::bench_api::run(api),
        Some(BenchCommand::Autoscale(a)) => return super::bench_autoscale::run(a),
        None => {}
    }
    if args.reps == 0 || args.bars < 2 || args.instantiations == 0 {
        return Err(CliError::input(anyhow!(
            "--reps and --instantiations must be at least 1, --bars at least 2"
        )));
    }
    let plugin = args.plugin.as_ref().ok_or_else(|| {
        CliError::input(anyhow!("give --plugin PATH (the ema-crossover component)"))
    })?;
    let bytes = std::fs::read(plugin)
        .with_context(|| format!("cannot read {}", plugin.display()))
        .map_err(CliError::input)?;
    let figures = measure(args, &bytes).map_err(CliError::run)?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&figures).map_err(CliError::run)?
        );
        return Ok(());
    }
    let f = &figures;
    outln!(
        "stratbox bench ({} one-minute bars, median of {} runs, NaN canonicalisation: {})",
        f.bars,
        f.reps,
        f.nan_canonicalization
    );
    outln!(
        "  native reference   {:>8.1} M bars/s  ({:.1} ms; CPU {:.1} ms; best {:.1} ms)",
        f.native_bars_per_sec / 1e6,
        f.native_ms,
        f.native_cpu_ms,
        f.native_best_ms
    );
    outln!(
        "  wasm, fuel on      {:>8.1} M bars/s  ({:.1} ms; CPU {:.1} ms; best {:.1} ms; {} fuel)",
        f.wasm_bars_per_sec / 1e6,
        f.wasm_ms,
        f.wasm_cpu_ms,
        f.wasm_best_ms,
        f.wasm_fuel_used
    );
    outln!("  wasm / native      {:>8.1} %", f.wasm_over_native_pct);
    outln!("  compile            {:>8.2} ms", f.compile_ms);
    outln!(
        "  load precompiled   {:>8.3} ms  ({:.0}x faster)",
        f.precompiled_load_ms,
        f.compile_over_precompiled
    );
    outln!(
        "  instantiate        {:>8.1} us median ({} allocator, includes init)",
        f.instantiate_median_us,
        f.allocator
    );
    Ok(())
}

/// What `stratbox bench` measures; `--json` prints it as is.
#[derive(Debug, serde::Serialize)]
struct Figures {
    bars: usize,
    reps: usize,
    native_ms: f64,
    native_bars_per_sec: f64,
    /// CPU time of the running thread: what the run cost whatever else
    /// the machine was doing (wall time also counts time descheduled).
    native_cpu_ms: f64,
    /// The fastest of the runs: the least disturbed by a noisy host.
    native_best_ms: f64,
    wasm_ms: f64,
    wasm_bars_per_sec: f64,
    wasm_cpu_ms: f64,
    wasm_best_ms: f64,
    wasm_fuel_used: u64,
    wasm_over_native_pct: f64,
    compile_ms: f64,
    precompiled_load_ms: f64,
    compile_over_precompiled: f64,
    instantiate_median_us: f64,
    allocator: &'static str,
    nan_canonicalization: &'static str,
    final_equity: f64,
}

fn measure(args: &BenchArgs, bytes: &[u8]) -> anyhow::Result<Figures> {
    let candles: Candles = candles::synth(args.bars, 42, 60, 1_704_067_200, 42_000.0);
    let config = BacktestConfig::default();
    let scratch = std::env::temp_dir().join(format!("stratbox-bench-{}", std::process::id()));
    let sandbox = Sandbox::new(SandboxConfig {
        cache_dir: Some(scratch.join("run")),
        nan_canonicalization: args.nan_canonicalization.sandbox(),
        ..SandboxConfig::default()
    })?;
    let plugin = sandbox.load(bytes)?;
    let params = Params::validate(&plugin.description.params, &Default::default())?;

    // Interleaved so both sides see the same machine load.
    let (mut native, mut wasm) = (Vec::new(), Vec::new());
    let (mut native_cpu, mut wasm_cpu) = (Vec::new(), Vec::new());
    let (mut native_equity, mut wasm_equity, mut fuel) = (0.0, 0.0, 0);
    for _ in 0..args.reps {
        let (started, cpu) = (Instant::now(), thread_cpu()?);
        let mut reference = EmaCrossover::new(12, 26, false);
        let report = engine::run_backtest(&candles, &mut reference, &config)?;
        native.push(started.elapsed());
        native_cpu.push(thread_cpu()?.saturating_sub(cpu));
        native_equity = report.final_equity;

        let (started, cpu) = (Instant::now(), thread_cpu()?);
        let mut strategy = sandbox.instantiate(
            &plugin,
            &params,
            candles.len(),
            RunLimits::default(),
            CancelToken::default(),
        )?;
        let report = engine::run_backtest(&candles, &mut strategy, &config)?;
        wasm.push(started.elapsed());
        wasm_cpu.push(thread_cpu()?.saturating_sub(cpu));
        wasm_equity = report.final_equity;
        fuel = report.fuel_used;
    }
    if native_equity.to_bits() != wasm_equity.to_bits() {
        return Err(anyhow!(
            "wasm and native disagree: final equity {wasm_equity} vs {native_equity}"
        ));
    }
    let best = |runs: &[Duration]| runs.iter().min().copied().unwrap_or_default();
    let (native_best, wasm_best) = (best(&native), best(&wasm));
    let (native, wasm) = (median(native), median(wasm));
    let (native_cpu, wasm_cpu) = (median(native_cpu), median(wasm_cpu));

    // Compile from scratch (fresh cache directory each time) against a
    // load from the disk cache (memory cache cleared).
    let (mut compile, mut precompiled) = (Vec::new(), Vec::new());
    for rep in 0..args.reps {
        let cold = Sandbox::new(SandboxConfig {
            cache_dir: Some(scratch.join(format!("cold-{rep}"))),
            nan_canonicalization: args.nan_canonicalization.sandbox(),
            ..SandboxConfig::default()
        })?;
        let started = Instant::now();
        let loaded = cold.load(bytes)?;
        compile.push(started.elapsed());
        anyhow::ensure!(
            loaded.source == "compiled",
            "expected a compile, got {}",
            loaded.source
        );
        cold.clear_memory_cache();
        let started = Instant::now();
        let loaded = cold.load(bytes)?;
        precompiled.push(started.elapsed());
        anyhow::ensure!(
            loaded.source == "disk-cache",
            "expected the disk cache, got {}",
            loaded.source
        );
    }
    let (compile, precompiled) = (median(compile), median(precompiled));

    let mut instantiate = Vec::with_capacity(args.instantiations);
    for _ in 0..args.instantiations {
        let started = Instant::now();
        let strategy = sandbox.instantiate(
            &plugin,
            &params,
            1_000,
            RunLimits::default(),
            CancelToken::default(),
        )?;
        instantiate.push(started.elapsed());
        drop(strategy);
    }
    let instantiate = median(instantiate);
    let _ = std::fs::remove_dir_all(&scratch);

    let per_sec = |d: Duration| args.bars as f64 / d.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    Ok(Figures {
        bars: args.bars,
        reps: args.reps,
        native_ms: ms(native),
        native_bars_per_sec: per_sec(native),
        native_cpu_ms: ms(native_cpu),
        native_best_ms: ms(native_best),
        wasm_ms: ms(wasm),
        wasm_bars_per_sec: per_sec(wasm),
        wasm_cpu_ms: ms(wasm_cpu),
        wasm_best_ms: ms(wasm_best),
        wasm_fuel_used: fuel,
        wasm_over_native_pct: per_sec(wasm) / per_sec(native) * 100.0,
        compile_ms: ms(compile),
        precompiled_load_ms: ms(precompiled),
        compile_over_precompiled: compile.as_secs_f64() / precompiled.as_secs_f64(),
        instantiate_median_us: instantiate.as_secs_f64() * 1e6,
        allocator: sandbox.allocator(),
        nan_canonicalization: args.nan_canonicalization.name(),
        final_equity: wasm_equity,
    })
}
