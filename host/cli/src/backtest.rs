use anyhow::{anyhow, Context};
use clap::Args;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::candles::load_csv;
use super::market::{flag_message, MarketArgs};
use super::{CliError, CliResult};
use stratbox_engine::reference;
use stratbox_engine::{
    self as engine, BacktestConfig, ExitReason, ParamInput, Params, Report, StrategyInfo,
};
use stratbox_sandbox::{CancelToken, RunError, RunLimits, Sandbox, SandboxConfig};

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// The strategy component (.wasm).
    #[arg(
        long,
        required_unless_present = "reference",
        conflicts_with = "reference"
    )]
    plugin: Option<PathBuf>,
    /// Run a built-in native reference strategy instead of a plugin
    /// (`ema-crossover`), to compare against the sandboxed one.
    #[arg(long, value_parser = ["ema-crossover"])]
    reference: Option<String>,
    /// Candle CSV (header ts,open,high,low,close,volume).
    #[arg(long, required_unless_present = "symbols", conflicts_with = "symbols")]
    candles: Option<PathBuf>,
    /// One symbol of a portfolio strategy and its candle CSV, NAME=PATH;
    /// repeat for each symbol (docs/strategies.md, "Several symbols").
    #[arg(
        long = "symbol",
        value_name = "NAME=PATH",
        conflicts_with = "reference"
    )]
    symbols: Vec<String>,
    /// A strategy parameter, NAME=VALUE; repeat for several.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    #[command(flatten)]
    account: AccountArgs,
    #[command(flatten)]
    market: MarketArgs,
    /// Fuel budget for the run (default: scaled to the number of bars).
    #[arg(long)]
    fuel: Option<u64>,
    /// Wall-clock limit for the run, in milliseconds.
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Memory cap for the strategy, in MiB (the sandbox's cap is also the
    /// most a run may ask for).
    #[arg(long, default_value_t = SandboxConfig::default().memory_limit_bytes >> 20)]
    memory_mib: usize,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Print the strategy's log lines to standard error.
    #[arg(long)]
    show_log: bool,
}

/// The account a run trades (`stratbox backtest` and `stratbox optimize`).
#[derive(Debug, Args)]
pub struct AccountArgs {
    /// Initial capital.
    #[arg(long, default_value_t = 10_000.0)]
    capital: f64,
    /// Commission, a fraction of notional per fill.
    #[arg(long, default_value_t = 0.0006)]
    commission: f64,
    /// Position notional may reach equity times leverage.
    #[arg(long, default_value_t = 1.0)]
    leverage: f64,
    /// Adverse slippage on market and stop fills, in basis points.
    #[arg(long, default_value_t = 0.0)]
    slippage_bps: f64,
}

impl AccountArgs {
    /// The engine's config, checked; a bad value names its flag.
    pub fn config(&self) -> Result<BacktestConfig, CliError> {
        let config = BacktestConfig {
            initial_capital: self.capital,
            commission: self.commission,
            slippage_bps: self.slippage_bps,
            leverage: self.leverage,
            ..BacktestConfig::default()
        };
        config
            .check()
            .map_err(|e| CliError::input(anyhow!("{}", flag_message(&e))))?;
        Ok(config)
    }
}

pub fn run(args: &BacktestArgs) -> CliResult {
    let Some(candles_path) = &args.candles else {
        return run_symbols(args);
    };
    let candles = load_csv(candles_path)?;
    let mut config = args.account.config()?;
    args.market.apply(&mut config)?;
    super::market::check_marks(&candles, &config)?;
    let inputs = parse_params(&args.params)?;
    let report = match (&args.plugin, &args.reference) {
        (Some(path), _) => run_plugin(args, path, &inputs, &candles, &config)?,
        (None, Some(name)) => run_reference(name, &inputs, &candles, &config)?,
        (None, None) => return Err(CliError::input(anyhow!("give --plugin PATH.wasm"))),
    };
    if args.json {
        let json = report.to_json().map_err(CliError::run)?;
        outln!("{json}");
    } else {
        print_summary(&report);
    }
    Ok(())
}

/// A portfolio plugin over `--symbol NAME=PATH` (several symbols, one
/// account). A perpetual run applies `--instrument` and `--funding-rate`
/// to every symbol; per-symbol funding and mark files are the service's
/// (stored per symbol), so `--funding` and `--mark` are refused here.
fn run_symbols(args: &BacktestArgs) -> CliResult {
    let path = args
        .plugin
        .as_ref()
        .ok_or_else(|| CliError::input(anyhow!("--symbol needs --plugin PATH.wasm")))?;
    let universe = load_symbols(&args.symbols)?;
    let mut config = args.account.config()?;
    args.market.apply(&mut config)?;
    check_portfolio_market(&config)?;
    let inputs = parse_params(&args.params)?;
    let (bytes, sandbox) = open_sandbox(path)?;
    let plugin = sandbox
        .load(&bytes)
        .with_context(|| format!("cannot load plugin {}", path.display()))
        .map_err(CliError::input)?;
    let params = Params::validate(&plugin.description.params, &inputs)
        .map_err(|e| CliError::input(anyhow!("--param: {e}")))?;
    let mut strategy = sandbox
        .instantiate_portfolio(
            &plugin,
            &params,
            &universe,
            config.market,
            args.limits(),
            CancelToken::default(),
        )
        .map_err(CliError::run)?;
    let result =
        engine::portfolio::run_portfolio(&universe, &mut strategy, &config, &[], &mut |_| {});
    if args.show_log {
        let (lines, dropped) = strategy.log();
        print_log(lines, dropped);
    }
    let mut report = result.map_err(engine_failure)?;
    report.strategy = Some(plugin.info(&params));
    if args.json {
        let json = report.to_json().map_err(CliError::run)?;
        outln!("{json}");
    } else {
        print_summary(&report);
    }
    Ok(())
}

/// `--symbol NAME=PATH` values on one timeline; errors name the flag.
pub(super) fn load_symbols(values: &[String]) -> Result<engine::portfolio::Universe, CliError> {
    let mut series = Vec::with_capacity(values.len());
    for item in values {
        let (name, csv) = item
            .split_once('=')
            .filter(|(name, csv)| !name.trim().is_empty() && !csv.is_empty())
            .ok_or_else(|| CliError::input(anyhow!("--symbol `{item}`: expected NAME=PATH")))?;
        let candles = load_csv(std::path::Path::new(csv))?;
        series.push((
            name.trim().to_ascii_uppercase(),
            std::sync::Arc::new(candles),
        ));
    }
    engine::portfolio::Universe::new(series)
        .map_err(|e| CliError::input(anyhow!("--symbol: {}", flag_message(&e))))
}

/// Per-symbol funding and mark files are the service's (stored per
/// symbol): locally, several symbols share `--funding-rate` and the
/// instrument.
pub(super) fn check_portfolio_market(config: &BacktestConfig) -> Result<(), CliError> {
    if config.perp.mark.is_some()
        || config.perp.funding.source() == engine::perp::FundingSource::History
    {
        return Err(CliError::input(anyhow!(
            "--mark and --funding take one symbol's file; with several --symbol give --funding-rate"
        )));
    }
    Ok(())
}

impl BacktestArgs {
    fn limits(&self) -> RunLimits {
        RunLimits {
            fuel: self.fuel,
            deadline: self.deadline_ms.map(Duration::from_millis),
            memory_limit_bytes: Some(self.memory_mib << 20),
        }
    }
}

fn open_sandbox(path: &PathBuf) -> Result<(Vec<u8>, Sandbox), CliError> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read plugin {}", path.display()))
        .map_err(CliError::input)?;
    let sandbox = Sandbox::new(SandboxConfig::default())
        .context("cannot start the sandbox")
        .map_err(CliError::run)?;
    Ok((bytes, sandbox))
}

fn print_log(lines: &[stratbox_sandbox::LogLine], dropped: u64) {
    for line in lines {
        eprintln!("[{}] {}", line.level, line.message);
    }
    if dropped > 0 {
        eprintln!("({dropped} more log lines dropped)");
    }
}

pub(super) fn parse_params(raw: &[String]) -> Result<BTreeMap<String, ParamInput>, CliError> {
    let mut inputs = BTreeMap::new();
    for item in raw {
        let (name, value) = item
            .split_once('=')
            .ok_or_else(|| CliError::input(anyhow!("--param `{item}`: expected NAME=VALUE")))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(CliError::input(anyhow!(
                "--param `{item}`: the name is empty"
            )));
        }
        if inputs
            .insert(name.to_string(), ParamInput::Text(value.to_string()))
            .is_some()
        {
            return Err(CliError::input(anyhow!("--param `{name}` is given twice")));
        }
    }
    Ok(inputs)
}

fn run_plugin(
    args: &BacktestArgs,
    path: &PathBuf,
    inputs: &BTreeMap<String, ParamInput>,
    candles: &stratbox_engine::candles::Candles,
    config: &BacktestConfig,
) -> Result<Report, CliError> {
    let (bytes, sandbox) = open_sandbox(path)?;
    let plugin = sandbox
        .load(&bytes)
        .with_context(|| format!("cannot load plugin {}", path.display()))
        .map_err(CliError::input)?;
    let params = Params::validate(&plugin.description.params, inputs)
        .map_err(|e| CliError::input(anyhow!("--param: {e}")))?;
    let mut strategy = sandbox
        .instantiate(
            &plugin,
            &params,
            candles.len(),
            args.limits(),
            CancelToken::default(),
        )
        .map_err(CliError::run)?;
    let result = engine::run_backtest(candles, &mut strategy, config);
    if args.show_log {
        let (lines, dropped) = strategy.log();
        print_log(lines, dropped);
    }
    let mut report = result.map_err(engine_failure)?;
    report.strategy = Some(plugin.info(&params));
    Ok(report)
}

fn run_reference(
    name: &str,
    inputs: &BTreeMap<String, ParamInput>,
    candles: &stratbox_engine::candles::Candles,
    config: &BacktestConfig,
) -> Result<Report, CliError> {
    let schema = reference::schema(name)
        .ok_or_else(|| CliError::input(anyhow!("--reference: unknown strategy `{name}`")))?;
    let params = Params::validate(&schema.params, inputs)
        .map_err(|e| CliError::input(anyhow!("--param: {e}")))?;
    let mut strategy = reference::build(name, &params)
        .ok_or_else(|| CliError::input(anyhow!("--reference: unknown strategy `{name}`")))?;
    let mut report =
        engine::run_backtest(candles, strategy.as_mut(), config).map_err(engine_failure)?;
    report.strategy = Some(StrategyInfo {
        name: schema.name.clone(),
        version: schema.version.clone(),
        sha256: None,
        params: params.to_map(),
    });
    Ok(report)
}

fn engine_failure(e: engine::EngineError) -> CliError {
    match e {
        engine::EngineError::Strategy(inner) => match inner.downcast::<RunError>() {
            Ok(run_error) => CliError::run(*run_error),
            Err(other) => CliError::run(anyhow!("strategy failed: {other}")),
        },
        engine::EngineError::NoCandles => CliError::input(e),
        other => CliError::run(other),
    }
}

fn opt(value: Option<f64>, unit: &str) -> String {
    value.map_or_else(|| "n/a".to_string(), |v| format!("{v:.2}{unit}"))
}

fn print_summary(r: &Report) {
    if let Some(s) = &r.strategy {
        let params: Vec<String> = s.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        outln!("{} {} ({})", s.name, s.version, params.join(", "));
    }
    outln!(
        "{} bars of {}s, {} .. {}",
        r.bars,
        r.timeframe_secs,
        r.start_ts,
        r.end_ts
    );
    outln!(
        "  final equity        {:>14.2}  (from {:.2})",
        r.final_equity,
        r.initial_capital
    );
    outln!(
        "  total return        {:>14.2}%  (buy and hold {:.2}%)",
        r.total_return_pct,
        r.buy_and_hold_return_pct
    );
    outln!("  CAGR                {:>15}", opt(r.cagr_pct, "%"));
    outln!(
        "  max drawdown        {:>14.2}%  ({} bars)",
        r.max_drawdown_pct,
        r.max_drawdown_duration_bars
    );
    outln!(
        "  Sharpe / Sortino    {:>15} / {}",
        opt(r.sharpe, ""),
        opt(r.sortino, "")
    );
    outln!("  Calmar              {:>15}", opt(r.calmar, ""));
    outln!(
        "  annual volatility   {:>15}",
        opt(r.annual_volatility_pct, "%")
    );
    outln!(
        "  avg drawdown        {:>14.2}%  ({:.0} s on average)",
        r.avg_drawdown_pct,
        r.avg_drawdown_duration_secs
    );
    outln!(
        "  trades              {:>15}  (win rate {})",
        r.num_trades,
        opt(r.win_rate_pct, "%")
    );
    outln!("  profit factor       {:>15}", opt(r.profit_factor, ""));
    outln!(
        "  SQN / expectancy    {:>15} / {}  (Kelly {})",
        opt(r.sqn, ""),
        opt(r.expectancy, ""),
        opt(r.kelly, "")
    );
    outln!(
        "  avg / best / worst  {:>15} / {} / {}",
        opt(r.avg_trade_pct, "%"),
        opt(r.best_trade_pct, "%"),
        opt(r.worst_trade_pct, "%")
    );
    outln!("  exposure            {:>14.2}%", r.exposure_pct);
    outln!("  fees paid           {:>14.2}", r.fees_paid);
    outln!("  fuel used           {:>15}", r.fuel_used);
    match &r.open_position {
        Some(p) => outln!(
            "  open position       {:?} {:.6} @ {:.2}, unrealized {:.2}",
            p.side,
            p.qty,
            p.entry_price,
            p.unrealized_pnl
        ),
        None => outln!("  open position       none"),
    }
    print_perpetual(r);
    print_symbols(r);
}

/// A portfolio's per-symbol table; nothing for one symbol.
fn print_symbols(r: &Report) {
    let Some(symbols) = &r.symbols else {
        return;
    };
    outln!(
        "  {:<12} {:>6} {:>8} {:>13} {:>12} {:>10} {:>9}",
        "symbol",
        "bars",
        "trades",
        "contribution",
        "realized",
        "exposure",
        "open"
    );
    for s in symbols {
        outln!(
            "  {:<12} {:>6} {:>8} {:>12.2}% {:>12.2} {:>9.2}% {:>9}",
            s.symbol,
            s.bars,
            s.num_trades,
            s.contribution_pct,
            s.realized_pnl,
            s.exposure_pct,
            s.open_position
                .as_ref()
                .map_or_else(|| "none".to_string(), |p| format!("{:.4}", p.qty))
        );
    }
}

/// The perpetual lines of the text report; nothing on spot, whose output
/// stays as it was.
fn print_perpetual(r: &Report) {
    let Some(market) = r.market else {
        return;
    };
    outln!("  market              {:>15}", market.as_str());
    if let Some(n) = r.liquidations {
        outln!("  liquidations        {n:>15}");
    }
    if let Some(paid) = r.funding_paid {
        let source = match r.funding_source {
            Some(source) => serde_json::to_value(source)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default(),
            None => String::new(),
        };
        outln!("  funding paid        {paid:>14.2}  ({source})");
    }
    if let (Some(maker), Some(taker)) = (r.fees_maker, r.fees_taker) {
        outln!("  fees maker / taker  {maker:>14.2} / {taker:.2}");
    }
    if let Some(rejected) = &r.rejected_orders {
        let listed: Vec<String> = rejected.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let listed = if listed.is_empty() {
            "none".to_string()
        } else {
            listed.join(", ")
        };
        outln!("  rejected orders     {listed:>15}");
    }
    let liquidated: Vec<_> = r
        .trades
        .iter()
        .filter(|t| t.exit_reason == ExitReason::Liquidation)
        .collect();
    for t in liquidated {
        outln!(
            "  liquidated          {:?} {:.6} @ {:.2} -> {:.2} at {} (bar {}), pnl {:.2}",
            t.side,
            t.qty,
            t.entry_price,
            t.exit_price,
            t.exit_ts,
            t.exit_bar,
            t.pnl
        );
    }
}
