//! `stratbox bench`: the engine figures of the README (WASM against
//! native, compile, load, instantiate), measured side by side in one
//! process so machine noise hits both sides alike, and the same run on a
//! linear perpetual against the spot one. The service's figures
//! (queue, API, autoscaler, optimizations) are measured by the benches in
//! host/cli/benches (`cargo bench -p stratbox --bench queue -- ...`).

use anyhow::{anyhow, Context};
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CliError, CliResult};
use stratbox_engine::candles::{self, Candles};
use stratbox_engine::perp::{Funding, PerpConfig};
use stratbox_engine::reference::EmaCrossover;
use stratbox_engine::{self as engine, BacktestConfig, Market, Params};
use stratbox_sandbox::{CancelToken, NanCanonicalization, RunLimits, Sandbox, SandboxConfig};

#[derive(Debug, Args)]
pub struct BenchArgs {
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
    /// The same EMA crossover built from Python (`stratbox plugin build
    /// plugins/ema-crossover/python`): measured against the Rust
    /// component in the same run.
    #[arg(long)]
    python: Option<PathBuf>,
    /// The same EMA crossover built from JavaScript.
    #[arg(long)]
    js: Option<PathBuf>,
    /// The momentum-rotation portfolio component: adds a run of
    /// `--symbols` symbols of `--symbol-bars` hourly bars each, WASM
    /// against the native reference, after the single-symbol figures.
    #[arg(long)]
    portfolio: Option<PathBuf>,
    /// Symbols of the portfolio run.
    #[arg(long, default_value_t = 10)]
    symbols: usize,
    /// Bars per symbol of the portfolio run.
    #[arg(long, default_value_t = 100_000)]
    symbol_bars: usize,
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
    let guests: Vec<(&str, &PathBuf)> = [("python", &args.python), ("javascript", &args.js)]
        .into_iter()
        .filter_map(|(name, path)| path.as_ref().map(|p| (name, p)))
        .collect();
    if !guests.is_empty() {
        return guest_figures(args, &bytes, &guests).map_err(CliError::run);
    }
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
    outln!(
        "  perpetual (linear_perpetual, {}x, funding {} every 8 h; {} trades, {} liquidations, {} rejected; spot {} trades)",
        PERP_LEVERAGE,
        PERP_FUNDING_RATE,
        f.perp_trades,
        f.perp_liquidations,
        f.perp_rejected_orders,
        f.spot_trades
    );
    outln!(
        "    native           {:>8.1} M bars/s  ({:.1} ms; CPU {:.1} ms; best {:.1} ms; {:.1} % of spot)",
        f.perp_native_bars_per_sec / 1e6,
        f.perp_native_ms,
        f.perp_native_cpu_ms,
        f.perp_native_best_ms,
        f.perp_native_over_spot_pct
    );
    outln!(
        "    wasm, fuel on    {:>8.1} M bars/s  ({:.1} ms; CPU {:.1} ms; best {:.1} ms; {:.1} % of spot)",
        f.perp_wasm_bars_per_sec / 1e6,
        f.perp_wasm_ms,
        f.perp_wasm_cpu_ms,
        f.perp_wasm_best_ms,
        f.perp_wasm_over_spot_pct
    );
    outln!(
        "    fee-free         {:>8.1} M bars/s native ({:.1} % of spot), {:.1} M bars/s wasm ({:.1} % of spot); {} trades, {} liquidations",
        f.perp_fee_free_native_bars_per_sec / 1e6,
        f.perp_fee_free_native_over_spot_pct,
        f.perp_fee_free_wasm_bars_per_sec / 1e6,
        f.perp_fee_free_wasm_over_spot_pct,
        f.perp_fee_free_trades,
        f.perp_fee_free_liquidations
    );
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
    if let Some(path) = &args.portfolio {
        portfolio_figures(args, path).map_err(CliError::run)?;
    }
    Ok(())
}

/// The portfolio case: a momentum rotation (lookback 72, rebalance 24,
/// top 2) over `--symbols` synthetic hourly series, the WASM component
/// and the native reference alternating, medians of `--reps`.
fn portfolio_figures(args: &BenchArgs, path: &PathBuf) -> anyhow::Result<()> {
    use stratbox_engine::portfolio::{run_portfolio, Universe};
    use stratbox_engine::reference::MomentumRotation;
    if args.symbols == 0 || args.symbol_bars < 2 {
        anyhow::bail!("--symbols must be at least 1 and --symbol-bars at least 2");
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let series = (0..args.symbols)
        .map(|k| {
            let candles = candles::synth(
                args.symbol_bars,
                1_000 + k as u64,
                3_600,
                1_704_067_200,
                100.0 * (k + 1) as f64,
            );
            (format!("SYM{k:02}USDT"), Arc::new(candles))
        })
        .collect();
    let universe = Universe::new(series)?;
    let symbol_bars = (args.symbols * args.symbol_bars) as f64;
    let config = BacktestConfig::default();
    let sandbox = Sandbox::new(SandboxConfig::default())?;
    let plugin = sandbox.load(&bytes)?;
    let params = Params::validate(&plugin.description.params, &BTreeMap::new())
        .map_err(|e| anyhow!("{e}"))?;
    let (mut native, mut wasm) = (Timed::new(), Timed::new());
    let mut reports = (None, None);
    for _ in 0..args.reps {
        let report = native.time(|| {
            let mut strategy = MomentumRotation::new(72, 24, 2);
            Ok(run_portfolio(
                &universe,
                &mut strategy,
                &config,
                &[],
                &mut |_| {},
            )?)
        })?;
        reports.0 = Some(report);
        let mut strategy = sandbox.instantiate_portfolio(
            &plugin,
            &params,
            &universe,
            config.market,
            RunLimits::default(),
            CancelToken::default(),
        )?;
        let report = wasm.time(|| {
            Ok(run_portfolio(
                &universe,
                &mut strategy,
                &config,
                &[],
                &mut |_| {},
            )?)
        })?;
        reports.1 = Some(report);
    }
    let (native_ms, native_cpu, native_best) = native.summary();
    let (wasm_ms, wasm_cpu, wasm_best) = wasm.summary();
    let rate = |d: Duration| symbol_bars / d.as_secs_f64();
    let trades = |r: &Option<engine::Report>| r.as_ref().map_or(0, |r| r.num_trades);
    outln!(
        "  portfolio ({} symbols x {} hourly bars, momentum rotation; {} trades native, {} wasm)",
        args.symbols,
        args.symbol_bars,
        trades(&reports.0),
        trades(&reports.1)
    );
    outln!(
        "    native           {:>8.1} M symbol-bars/s  ({:.1} ms; CPU {:.1} ms; best {:.1} ms)",
        rate(native_ms) / 1e6,
        native_ms.as_secs_f64() * 1e3,
        native_cpu.as_secs_f64() * 1e3,
        native_best.as_secs_f64() * 1e3
    );
    outln!(
        "    wasm, fuel on    {:>8.1} M symbol-bars/s  ({:.1} ms; CPU {:.1} ms; best {:.1} ms; {:.1} % of native)",
        rate(wasm_ms) / 1e6,
        wasm_ms.as_secs_f64() * 1e3,
        wasm_cpu.as_secs_f64() * 1e3,
        wasm_best.as_secs_f64() * 1e3,
        native_ms.as_secs_f64() / wasm_ms.as_secs_f64() * 100.0
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
    /// The same run under `linear_perpetual`, leverage 10, a constant
    /// funding rate every 8 hours; `_over_spot_pct` is its bars/s over the
    /// spot run's of the same side, in this process (target: at least 85).
    perp_native_ms: f64,
    perp_native_bars_per_sec: f64,
    perp_native_cpu_ms: f64,
    perp_native_best_ms: f64,
    perp_native_over_spot_pct: f64,
    perp_wasm_ms: f64,
    perp_wasm_bars_per_sec: f64,
    perp_wasm_cpu_ms: f64,
    perp_wasm_best_ms: f64,
    perp_wasm_over_spot_pct: f64,
    perp_liquidations: u64,
    /// Trades and rejected orders of the perpetual run (the fees of a 10x
    /// all-in account drain it; once it is too small for `min_qty`, entries
    /// are rejected and the run trades no more).
    perp_trades: usize,
    perp_rejected_orders: u64,
    /// Trades of the spot run, to compare.
    spot_trades: usize,
    perp_final_equity: f64,
    /// The perpetual run with no fees (maker, taker and commission 0):
    /// it trades about as often as spot, so the ratio is a fair one.
    perp_fee_free_native_bars_per_sec: f64,
    perp_fee_free_native_over_spot_pct: f64,
    perp_fee_free_wasm_bars_per_sec: f64,
    perp_fee_free_wasm_over_spot_pct: f64,
    perp_fee_free_trades: usize,
    perp_fee_free_liquidations: u64,
    compile_ms: f64,
    precompiled_load_ms: f64,
    compile_over_precompiled: f64,
    instantiate_median_us: f64,
    allocator: &'static str,
    nan_canonicalization: &'static str,
    final_equity: f64,
}

/// Leverage and funding rate of the perpetual case.
const PERP_LEVERAGE: f64 = 10.0;
const PERP_FUNDING_RATE: f64 = 0.0001;

/// Wall and CPU time of one run.
struct Timed {
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
}

impl Timed {
    fn new() -> Self {
        Self {
            wall: Vec::new(),
            cpu: Vec::new(),
        }
    }

    fn time<T>(&mut self, run: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
        let (started, cpu) = (Instant::now(), thread_cpu()?);
        let out = run()?;
        self.wall.push(started.elapsed());
        self.cpu.push(thread_cpu()?.saturating_sub(cpu));
        Ok(out)
    }

    /// (median wall, median CPU, best wall).
    fn summary(self) -> (Duration, Duration, Duration) {
        let best = self.wall.iter().min().copied().unwrap_or_default();
        (median(self.wall), median(self.cpu), best)
    }
}

fn measure(args: &BenchArgs, bytes: &[u8]) -> anyhow::Result<Figures> {
    let candles: Candles = candles::synth(args.bars, 42, 60, 1_704_067_200, 42_000.0);
    let config = BacktestConfig::default();
    let perp_config = BacktestConfig {
        leverage: PERP_LEVERAGE,
        market: Market::LinearPerpetual,
        perp: PerpConfig {
            funding: Funding::Constant(PERP_FUNDING_RATE),
            ..PerpConfig::default()
        },
        ..BacktestConfig::default()
    };
    perp_config.check()?;
    // The fees of a 10x all-in account drain it within a few hundred
    // trades; without fees the perpetual run keeps trading as often as
    // spot, so its ratio is not flattered by a quiet account.
    let free_config = BacktestConfig {
        perp: PerpConfig {
            instrument: Some(std::sync::Arc::new(engine::perp::Instrument {
                maker_fee: 0.0,
                taker_fee: 0.0,
                ..engine::perp::Instrument::bybit_default()
            })),
            ..perp_config.perp.clone()
        },
        commission: 0.0,
        ..perp_config.clone()
    };
    free_config.check()?;
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
    let mut spot_trades = 0;
    let (mut perp_native, mut perp_wasm) = (Timed::new(), Timed::new());
    let (mut perp_native_report, mut perp_wasm_report) = (None, None);
    let (mut free_native, mut free_wasm) = (Timed::new(), Timed::new());
    let mut free_report = None;
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
        spot_trades = report.num_trades;

        let run_native = |config: &BacktestConfig| -> anyhow::Result<engine::Report> {
            let mut reference = EmaCrossover::new(12, 26, false);
            Ok(engine::run_backtest(&candles, &mut reference, config)?)
        };
        let run_wasm = |config: &BacktestConfig| -> anyhow::Result<engine::Report> {
            let mut strategy = sandbox.instantiate(
                &plugin,
                &params,
                candles.len(),
                RunLimits::default(),
                CancelToken::default(),
            )?;
            Ok(engine::run_backtest(&candles, &mut strategy, config)?)
        };
        perp_native_report = Some(perp_native.time(|| run_native(&perp_config))?);
        perp_wasm_report = Some(perp_wasm.time(|| run_wasm(&perp_config))?);
        let native_report = free_native.time(|| run_native(&free_config))?;
        let report = free_wasm.time(|| run_wasm(&free_config))?;
        if native_report.final_equity.to_bits() != report.final_equity.to_bits() {
            return Err(anyhow!(
                "fee-free perpetual wasm and native disagree: final equity {} vs {}",
                report.final_equity,
                native_report.final_equity
            ));
        }
        free_report = Some(report);
    }
    let free_report = free_report.ok_or_else(|| anyhow!("no fee-free perpetual run"))?;
    let (free_native, _, _) = free_native.summary();
    let (free_wasm, _, _) = free_wasm.summary();
    if native_equity.to_bits() != wasm_equity.to_bits() {
        return Err(anyhow!(
            "wasm and native disagree: final equity {wasm_equity} vs {native_equity}"
        ));
    }
    let (perp_native_report, perp_wasm_report) = perp_native_report
        .zip(perp_wasm_report)
        .ok_or_else(|| anyhow!("no perpetual run"))?;
    if perp_native_report.final_equity.to_bits() != perp_wasm_report.final_equity.to_bits() {
        return Err(anyhow!(
            "perpetual wasm and native disagree: final equity {} vs {}",
            perp_wasm_report.final_equity,
            perp_native_report.final_equity
        ));
    }
    let (perp_native, perp_native_cpu, perp_native_best) = perp_native.summary();
    let (perp_wasm, perp_wasm_cpu, perp_wasm_best) = perp_wasm.summary();
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
        perp_native_ms: ms(perp_native),
        perp_native_bars_per_sec: per_sec(perp_native),
        perp_native_cpu_ms: ms(perp_native_cpu),
        perp_native_best_ms: ms(perp_native_best),
        perp_native_over_spot_pct: per_sec(perp_native) / per_sec(native) * 100.0,
        perp_wasm_ms: ms(perp_wasm),
        perp_wasm_bars_per_sec: per_sec(perp_wasm),
        perp_wasm_cpu_ms: ms(perp_wasm_cpu),
        perp_wasm_best_ms: ms(perp_wasm_best),
        perp_wasm_over_spot_pct: per_sec(perp_wasm) / per_sec(wasm) * 100.0,
        perp_liquidations: perp_wasm_report.liquidations.unwrap_or(0),
        perp_trades: perp_wasm_report.num_trades,
        perp_rejected_orders: perp_wasm_report
            .rejected_orders
            .as_ref()
            .map_or(0, |r| r.values().sum()),
        spot_trades,
        perp_final_equity: perp_wasm_report.final_equity,
        perp_fee_free_native_bars_per_sec: per_sec(free_native),
        perp_fee_free_native_over_spot_pct: per_sec(free_native) / per_sec(native) * 100.0,
        perp_fee_free_wasm_bars_per_sec: per_sec(free_wasm),
        perp_fee_free_wasm_over_spot_pct: per_sec(free_wasm) / per_sec(wasm) * 100.0,
        perp_fee_free_trades: free_report.num_trades,
        perp_fee_free_liquidations: free_report.liquidations.unwrap_or(0),
        compile_ms: ms(compile),
        precompiled_load_ms: ms(precompiled),
        compile_over_precompiled: compile.as_secs_f64() / precompiled.as_secs_f64(),
        instantiate_median_us: instantiate.as_secs_f64() * 1e6,
        allocator: sandbox.allocator(),
        nan_canonicalization: args.nan_canonicalization.name(),
        final_equity: wasm_equity,
    })
}

/// One guest language's figures against the Rust component.
#[derive(Debug, serde::Serialize)]
struct GuestFigures {
    runtime: String,
    size_bytes: usize,
    bars_per_sec: f64,
    run_ms: f64,
    best_ms: f64,
    fuel_used: u64,
    /// Its bars/s over the Rust component's, in the same repetitions.
    over_rust_pct: f64,
    compile_ms: f64,
    precompiled_load_ms: f64,
    /// Instantiate plus `init` with the default params.
    instantiate_median_us: f64,
}

/// `stratbox bench --python P --js J`: each guest's EMA crossover against
/// the Rust one over the same bars, interleaved repetition by repetition
/// so machine noise hits all alike, the final equity checked bit for bit;
/// then compile, load from the precompiled cache, and instantiate.
fn guest_figures(args: &BenchArgs, rust: &[u8], guests: &[(&str, &PathBuf)]) -> anyhow::Result<()> {
    let candles = candles::synth(args.bars, 42, 60, 1_704_067_200, 42_000.0);
    let config = BacktestConfig::default();
    let scratch =
        std::env::temp_dir().join(format!("stratbox-bench-guests-{}", std::process::id()));
    let sandbox_at = |dir: &str| {
        Sandbox::new(SandboxConfig {
            cache_dir: Some(scratch.join(dir)),
            nan_canonicalization: args.nan_canonicalization.sandbox(),
            ..SandboxConfig::default()
        })
    };
    let sandbox = sandbox_at("run")?;
    let mut loaded = vec![("rust".to_string(), rust.to_vec(), sandbox.load(rust)?)];
    for (name, path) in guests {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let plugin = sandbox.load(&bytes)?;
        loaded.push((name.to_string(), bytes, plugin));
    }
    let mut timed: Vec<Timed> = loaded.iter().map(|_| Timed::new()).collect();
    let mut fuel = vec![0; loaded.len()];
    for _ in 0..args.reps {
        let mut equity = None;
        for (i, (name, _, plugin)) in loaded.iter().enumerate() {
            let params = Params::validate(&plugin.description.params, &Default::default())?;
            let report = timed[i].time(|| {
                let mut strategy = sandbox.instantiate(
                    plugin,
                    &params,
                    candles.len(),
                    RunLimits::default(),
                    CancelToken::default(),
                )?;
                Ok(engine::run_backtest(&candles, &mut strategy, &config)?)
            })?;
            fuel[i] = report.fuel_used;
            match equity {
                None => equity = Some(report.final_equity),
                Some(rust) => anyhow::ensure!(
                    rust.to_bits() == report.final_equity.to_bits(),
                    "{name} and rust disagree: final equity {} vs {rust}",
                    report.final_equity
                ),
            }
        }
    }
    let per_sec = |d: Duration| args.bars as f64 / d.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let summaries: Vec<_> = timed.into_iter().map(Timed::summary).collect();
    let rust_median = summaries[0].0;
    let mut figures = Vec::new();
    for (i, (name, bytes, plugin)) in loaded.iter().enumerate() {
        let cold = sandbox_at(&format!("cold-{i}"))?;
        let started = Instant::now();
        anyhow::ensure!(cold.load(bytes)?.source == "compiled", "expected a compile");
        let compile = started.elapsed();
        let mut precompiled = Vec::new();
        for _ in 0..args.reps {
            cold.clear_memory_cache();
            let started = Instant::now();
            anyhow::ensure!(
                cold.load(bytes)?.source == "disk-cache",
                "expected the disk cache"
            );
            precompiled.push(started.elapsed());
        }
        let params = Params::validate(&plugin.description.params, &Default::default())?;
        let mut instantiate = Vec::new();
        for _ in 0..args.instantiations.min(200) {
            let started = Instant::now();
            let strategy = sandbox.instantiate(
                plugin,
                &params,
                1_000,
                RunLimits::default(),
                CancelToken::default(),
            )?;
            instantiate.push(started.elapsed());
            drop(strategy);
        }
        let (run, _, best) = summaries[i];
        figures.push(GuestFigures {
            runtime: name.clone(),
            size_bytes: bytes.len(),
            bars_per_sec: per_sec(run),
            run_ms: ms(run),
            best_ms: ms(best),
            fuel_used: fuel[i],
            over_rust_pct: per_sec(run) / per_sec(rust_median) * 100.0,
            compile_ms: ms(compile),
            precompiled_load_ms: ms(median(precompiled)),
            instantiate_median_us: median(instantiate).as_secs_f64() * 1e6,
        });
    }
    let _ = std::fs::remove_dir_all(&scratch);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&figures)?);
        return Ok(());
    }
    outln!(
        "stratbox bench: the EMA crossover in each language ({} one-minute bars, fuel on, median of {} interleaved runs; final equity identical to the bit)",
        args.bars,
        args.reps
    );
    for f in &figures {
        outln!(
            "  {:<10} {:>8.2} M bars/s ({:>6.1} % of rust; {:.1} ms, best {:.1} ms; {} fuel) | {:>5.1} MB | compile {:>8.1} ms | load precompiled {:>6.2} ms | instantiate+init {:>7.1} us",
            f.runtime,
            f.bars_per_sec / 1e6,
            f.over_rust_pct,
            f.run_ms,
            f.best_ms,
            f.fuel_used,
            f.size_bytes as f64 / 1e6,
            f.compile_ms,
            f.precompiled_load_ms,
            f.instantiate_median_us
        );
    }
    Ok(())
}
