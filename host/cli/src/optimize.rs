//! `stratbox optimize`: a parameter sweep or a Bayesian search run locally
//! (no Redis) on every core, against one compiled plugin and one loaded
//! candle file.

use anyhow::{anyhow, Context};
use clap::Args;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::candles::load_csv;
use super::{CliError, CliResult};
use stratbox_engine::candles::Candles;
use stratbox_engine::optimize::bayes::{DEFAULT_BATCH, DEFAULT_STARTUP};
use stratbox_engine::optimize::{
    self, full_report_of, walkforward, Bayes, Combination, Data, DimensionSpec, Direction, Holdout,
    Method, Objective, ReferenceFactory, Row, Sampler, StrategyFactory, Table, WalkForward,
    WalkForwardReport, DEFAULT_MAX_COMBINATIONS,
};
use stratbox_engine::{BacktestConfig, Params};
use stratbox_sandbox::{PluginFactory, Sandbox, SandboxConfig};

#[derive(Debug, Args)]
pub struct OptimizeArgs {
    /// The strategy component (.wasm).
    #[arg(
        long,
        required_unless_present = "reference",
        conflicts_with = "reference"
    )]
    plugin: Option<PathBuf>,
    /// Sweep a built-in native reference strategy instead (`ema-crossover`).
    #[arg(long, value_parser = ["ema-crossover"])]
    reference: Option<String>,
    /// Candle CSV (header ts,open,high,low,close,volume).
    #[arg(long, required_unless_present = "symbols", conflicts_with = "symbols")]
    candles: Option<PathBuf>,
    /// One symbol of a portfolio strategy and its candle CSV, NAME=PATH;
    /// repeat for each symbol (no --walk-forward over several symbols yet).
    #[arg(long = "symbol", value_name = "NAME=PATH", conflicts_with_all = ["reference", "walk_forward"])]
    symbols: Vec<String>,
    /// A fixed strategy parameter, NAME=VALUE; repeat for several.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// A searched range, NAME=MIN:MAX[:STEP] (step defaults to the
    /// schema's); repeat for several.
    #[arg(long = "range", value_name = "NAME=MIN:MAX[:STEP]")]
    ranges: Vec<String>,
    /// Searched values, NAME=V1,V2,...; repeat for several.
    #[arg(long = "values", value_name = "NAME=V1,V2")]
    values: Vec<String>,
    /// `grid` (every combination), `random` (--samples of them) or `bayes`
    /// (a search of --trials that learns from each batch's results).
    #[arg(long, default_value = "grid", value_parser = ["grid", "random", "bayes"])]
    method: String,
    /// Combinations drawn by the random method.
    #[arg(long)]
    samples: Option<usize>,
    /// Param sets the bayes method runs in all.
    #[arg(long)]
    trials: Option<usize>,
    /// Param sets the bayes method proposes at once (run together on every
    /// thread, then learnt from); the same seed and batch give the same
    /// trials.
    #[arg(long, default_value_t = DEFAULT_BATCH)]
    batch: usize,
    /// Trials the bayes method draws at random before its model is used.
    #[arg(long, default_value_t = DEFAULT_STARTUP)]
    startup: usize,
    /// Seed of the random and bayes methods (same seed, same trials).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The report metric to rank by.
    #[arg(long, default_value = "sharpe")]
    objective: String,
    /// Rank lowest first (default: highest first).
    #[arg(long)]
    minimize: bool,
    /// Results with fewer closed trades are listed but not ranked.
    #[arg(long, default_value_t = 0)]
    min_trades: u64,
    /// Only run combinations satisfying this, e.g. 'fast_period < slow_period'.
    #[arg(long)]
    constraint: Option<String>,
    /// Hold out the bars from this date (RFC 3339) or this last fraction
    /// (0 < f < 1) as out of sample.
    #[arg(long)]
    holdout: Option<String>,
    /// Walk-forward: optimize on each train window, trade its best params
    /// on the test window after it, and report the stitched out-of-sample
    /// account: `train=LEN,test=LEN[,step=LEN][,anchored]`, LEN in bars
    /// (`2000`) or a duration (`90d`, `12h`, `4w`); step must equal test.
    #[arg(long, value_name = "SPEC", conflicts_with_all = ["holdout", "csv"])]
    walk_forward: Option<String>,
    /// Refuse sweeps of more combinations than this.
    #[arg(long, default_value_t = DEFAULT_MAX_COMBINATIONS)]
    max_combinations: usize,
    /// Rows printed (and full reports in --json).
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    account: super::backtest::AccountArgs,
    #[command(flatten)]
    market: super::market::MarketArgs,
    /// Print the top results (with their full reports) as one JSON object.
    #[arg(long)]
    json: bool,
    /// Write the whole ranked table as CSV to this file.
    #[arg(long, value_name = "PATH")]
    csv: Option<PathBuf>,
    /// No progress bar on standard error.
    #[arg(long)]
    quiet: bool,
    /// Sandbox memory handling, as for `stratbox worker`: KiB of each
    /// pooled memory reset with memset instead of madvise when a run ends.
    #[arg(long, env = "STRATBOX_MEMORY_KEEP_RESIDENT_KIB", default_value_t = SandboxConfig::default().memory_keep_resident >> 10)]
    memory_keep_resident_kib: usize,
    /// Map data segments copy-on-write.
    #[arg(long, env = "STRATBOX_MEMORY_INIT_COW", default_value_t = SandboxConfig::default().memory_init_cow, action = clap::ArgAction::Set)]
    memory_init_cow: bool,
    /// Pooled memories released per madvise.
    #[arg(long, env = "STRATBOX_DECOMMIT_BATCH", default_value_t = SandboxConfig::default().decommit_batch)]
    decommit_batch: usize,
}

/// Maps a field of the optimizer's errors to the flag the user typed.
fn flag_for(field: &str, ranges: &[String]) -> String {
    let (head, rest) = field.split_once('.').unwrap_or((field, ""));
    match head {
        "search_space" if rest.is_empty() => "--range/--values".into(),
        "search_space" => {
            let (name, part) = rest.split_once('.').unwrap_or((rest, ""));
            let is_range = ranges
                .iter()
                .any(|r| r.split_once('=').is_some_and(|(n, _)| n.trim() == name));
            match (is_range, part) {
                (true, "") => format!("--range {name}"),
                (true, part) => format!("--range {name} ({part})"),
                (false, _) => format!("--values {name}"),
            }
        }
        "params" => format!("--param {rest}"),
        "objective" => "--objective".into(),
        "constraint" => "--constraint".into(),
        "holdout" => "--holdout".into(),
        "walk_forward" => format!(
            "--walk-forward{}",
            if rest.is_empty() {
                String::new()
            } else {
                format!(" ({rest})")
            }
        ),
        "samples" => "--samples".into(),
        "trials" => "--trials".into(),
        "batch" => "--batch".into(),
        other => other.to_string(),
    }
}

fn bad(e: &optimize::OptimizeError, ranges: &[String]) -> CliError {
    CliError::input(anyhow!("{}: {}", flag_for(&e.field, ranges), e.message))
}

pub fn run(args: &OptimizeArgs) -> CliResult {
    let started = Instant::now();
    let mut config = args.account.config()?;
    args.market.apply(&mut config)?;
    if args.top == 0 {
        return Err(CliError::input(anyhow!("--top: must be at least 1")));
    }
    if args.threads == Some(0) {
        return Err(CliError::input(anyhow!("--threads: must be at least 1")));
    }
    // `None`: the bayes method, whose sampler proposes the combinations.
    let method = match (args.method.as_str(), args.samples, args.trials) {
        ("random", Some(samples), None) => Some(Method::Random {
            samples,
            seed: args.seed,
        }),
        ("random", None, _) => {
            return Err(CliError::input(anyhow!(
                "--samples: the random method needs a number of samples"
            )))
        }
        ("bayes", None, Some(_)) => None,
        ("bayes", _, None) => {
            return Err(CliError::input(anyhow!(
                "--trials: the bayes method needs a number of trials"
            )))
        }
        (_, Some(_), _) => {
            return Err(CliError::input(anyhow!(
                "--samples: only the random method takes samples (add --method random)"
            )))
        }
        (_, _, Some(_)) => {
            return Err(CliError::input(anyhow!(
                "--trials: only the bayes method takes trials (add --method bayes)"
            )))
        }
        _ => Some(Method::Grid),
    };
    let bayes = match (method, args.trials) {
        (None, Some(trials)) => Some(
            Bayes::new(
                trials,
                args.batch,
                args.startup,
                args.seed,
                args.max_combinations,
            )
            .map_err(|e| bad(&e, &args.ranges))?,
        ),
        _ => None,
    };
    let direction = if args.minimize {
        Direction::Minimize
    } else {
        Direction::Maximize
    };
    let objective = Objective::new(&args.objective, direction, args.min_trades)
        .map_err(|e| bad(&e, &args.ranges))?;
    let holdout = args
        .holdout
        .as_deref()
        .map(Holdout::parse)
        .transpose()
        .map_err(|e| bad(&e, &args.ranges))?;
    let walk_forward = args
        .walk_forward
        .as_deref()
        .map(WalkForward::parse)
        .transpose()
        .map_err(|e| bad(&e, &args.ranges))?;
    let params = super::backtest::parse_params(&args.params)?;
    let dims = parse_space(&args.ranges, &args.values)?;
    let (candles, universe) = match &args.candles {
        Some(path) => {
            let candles = load_csv(path)?;
            super::market::check_marks(&candles, &config)?;
            (candles, None)
        }
        None => {
            super::backtest::check_portfolio_market(&config)?;
            (
                Candles::default(),
                Some(super::backtest::load_symbols(&args.symbols)?),
            )
        }
    };

    let sandbox;
    let factory: Box<dyn StrategyFactory> =
        match (&args.plugin, &args.reference) {
            (Some(path), _) => {
                let bytes = std::fs::read(path)
                    .with_context(|| format!("cannot read plugin {}", path.display()))
                    .map_err(CliError::input)?;
                sandbox = Sandbox::new(SandboxConfig {
                    memory_keep_resident: args.memory_keep_resident_kib << 10,
                    memory_init_cow: args.memory_init_cow,
                    decommit_batch: args.decommit_batch,
                    ..SandboxConfig::default()
                })
                .context("cannot start the sandbox")
                .map_err(CliError::run)?;
                let plugin = sandbox
                    .load(&bytes)
                    .with_context(|| format!("cannot load plugin {}", path.display()))
                    .map_err(CliError::input)?;
                Box::new(PluginFactory::new(&sandbox, plugin))
            }
            (None, Some(name)) => Box::new(ReferenceFactory::new(name).ok_or_else(|| {
                CliError::input(anyhow!("--reference: unknown strategy `{name}`"))
            })?),
            (None, None) => return Err(CliError::input(anyhow!("give --plugin PATH.wasm"))),
        };
    let schema = &factory.description().params;
    let (space, constraint) = optimize::checked_space(
        schema,
        &params,
        &dims,
        args.constraint.as_deref(),
        args.max_combinations,
    )
    .map_err(|e| bad(&e, &args.ranges))?;
    let sampler = bayes.map(|b| Sampler::new(&space, constraint.as_ref(), b, &objective));
    let planned = match method {
        Some(method) => space
            .combinations(method, constraint.as_ref(), args.max_combinations)
            .map_err(|e| bad(&e, &args.ranges))?,
        None => Vec::new(),
    };
    if sampler.as_ref().is_some_and(|s| s.propose(&[]).is_empty()) {
        return Err(CliError::input(anyhow!(
            "--constraint: no combination of the search space satisfies it"
        )));
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let search = Search {
        factory: factory.as_ref(),
        planned: &planned,
        sampler: sampler.as_ref(),
        objective: &objective,
        config: &config,
        threads,
        quiet: args.quiet,
    };
    if let Some(spec) = &walk_forward {
        return walk(&search, &candles, spec, args, started);
    }
    let (in_sample, out_of_sample) = match (&holdout, &universe) {
        (Some(h), None) => {
            let (a, b) = h.split(&candles).map_err(|e| bad(&e, &args.ranges))?;
            (a, Some(b))
        }
        _ => (candles, None),
    };
    let held_out = match (&holdout, &universe) {
        (Some(h), Some(universe)) => Some(
            h.split_universe(universe)
                .map_err(|e| bad(&e, &args.ranges))?,
        ),
        _ => None,
    };
    let (in_sample, out_of_sample) = match (&held_out, &universe) {
        (Some((a, o)), _) => (Data::Portfolio(a, &[]), Some(Data::Portfolio(o, &[]))),
        (None, Some(universe)) => (Data::Portfolio(universe, &[]), None),
        (None, None) => (
            Data::Series(&in_sample),
            out_of_sample.as_ref().map(Data::Series),
        ),
    };
    let (combos, rows, sampler_secs) = search.run(in_sample, out_of_sample, "")?;
    let elapsed = started.elapsed().as_secs_f64();
    let table = optimize::rank(&objective, rows);
    if let Some(path) = &args.csv {
        super::write_atomically(path, table.to_csv().as_bytes()).map_err(CliError::run)?;
    }
    if !args.quiet {
        eprintln!(
            "{} {} in {:.2} s ({:.0}/s) on {threads} threads{}, {} bars in sample{}",
            combos.len(),
            if sampler.is_some() {
                "trials"
            } else {
                "combinations"
            },
            elapsed,
            combos.len() as f64 / elapsed.max(1e-9),
            sampler_secs
                .map(|s| format!(
                    ", the sampler {:.3} ms per trial",
                    s * 1e3 / combos.len().max(1) as f64
                ))
                .unwrap_or_default(),
            in_sample.len(),
            out_of_sample
                .map(|o| format!(", {} out of sample", o.len()))
                .unwrap_or_default()
        );
    }
    if args.json {
        let json = top_json(
            factory.as_ref(),
            &table,
            &combos,
            args.top,
            in_sample,
            out_of_sample,
            &config,
        )?;
        outln!("{json}");
    } else {
        print_top(&table, args.top);
        let timeframe = config
            .timeframe_secs
            .or_else(|| in_sample.timeframe_secs())
            .unwrap_or(60);
        if let Some(dsr) = table.deflated_sharpe(timeframe) {
            outln!(
                "deflated Sharpe of rank 1: {dsr:.3} (the probability its Sharpe is not luck among {} combinations)",
                table.rows.len()
            );
        }
    }
    Ok(())
}

/// The combinations run, their rows, and the bayes sampler's own seconds.
type Searched = (Vec<Combination>, Vec<Row>, Option<f64>);

/// What every window of a walk-forward (or the one plain run) searches.
struct Search<'a> {
    factory: &'a dyn StrategyFactory,
    /// The grid or random combinations; empty for the bayes method.
    planned: &'a [Combination],
    sampler: Option<&'a Sampler<'a>>,
    objective: &'a Objective,
    config: &'a BacktestConfig,
    threads: usize,
    quiet: bool,
}

impl Search<'_> {
    /// The combinations run on `in_sample` (and `out_of_sample`), their
    /// rows, and the bayes sampler's own seconds. `label` prefixes the
    /// progress (a walk-forward's window).
    fn run(
        &self,
        in_sample: Data<'_>,
        out_of_sample: Option<Data<'_>>,
        label: &str,
    ) -> Result<Searched, CliError> {
        let run_all = |combos: &[Combination], progress: &(dyn Fn(usize) + Sync)| {
            optimize::evaluate_data(
                self.factory,
                combos,
                in_sample,
                out_of_sample,
                self.config,
                self.threads,
                progress,
                &stratbox_sandbox::is_fatal,
            )
            .map_err(|e| CliError::run(anyhow!("optimization failed: {e}")))
        };
        match self.sampler {
            None => {
                let bar = Progress::new(
                    self.planned.len(),
                    !self.quiet && std::io::stderr().is_terminal(),
                    label,
                );
                let rows = run_all(self.planned, &|done| bar.update(done))?;
                bar.finish();
                Ok((self.planned.to_vec(), rows, None))
            }
            Some(sampler) => {
                let line =
                    BestSoFar::new(self.objective, sampler.settings().trials, self.quiet, label);
                let mut running = std::time::Duration::ZERO;
                let searched = Instant::now();
                let (combos, rows) = sampler.search(
                    |batch| {
                        let t = Instant::now();
                        let rows = run_all(batch, &|_| {});
                        running += t.elapsed();
                        rows
                    },
                    |rows| line.update(rows),
                )?;
                line.finish();
                let secs = searched.elapsed().saturating_sub(running).as_secs_f64();
                if combos.len() < sampler.settings().trials && !self.quiet {
                    eprintln!(
                        "{label}the search space has no new combination satisfying the constraint after {} trials",
                        combos.len()
                    );
                }
                Ok((combos, rows, Some(secs)))
            }
        }
    }
}

/// `--walk-forward`: each window's search on its train bars, then the
/// report (docs/conventions/engine.md, "Walk-forward").
fn walk(
    search: &Search<'_>,
    candles: &Candles,
    spec: &WalkForward,
    args: &OptimizeArgs,
    started: Instant,
) -> CliResult {
    let timeframe = search
        .config
        .timeframe_secs
        .or_else(|| candles.timeframe_secs())
        .unwrap_or(60);
    let windows = spec
        .windows(candles.len(), timeframe)
        .map_err(|e| bad(&e, &args.ranges))?;
    let mut tables = Vec::with_capacity(windows.len());
    let mut runs = 0;
    for (k, w) in windows.iter().enumerate() {
        let train = walkforward::slice(candles, w.train.clone());
        let label = format!("window {}/{} ", k + 1, windows.len());
        let (combos, rows, _) = search.run(Data::Series(&train), None, &label)?;
        runs += combos.len();
        tables.push(optimize::rank(search.objective, rows));
    }
    let report = walkforward::report(
        search.factory,
        candles,
        spec,
        &windows,
        &tables,
        search.config,
    )
    .map_err(|e| CliError::run(anyhow!("walk-forward failed: {e}")))?;
    if !args.quiet {
        let elapsed = started.elapsed().as_secs_f64();
        eprintln!(
            "{} windows, {runs} runs in sample in {elapsed:.2} s ({:.0}/s) on {} threads, {} bars out of sample",
            windows.len(),
            runs as f64 / elapsed.max(1e-9),
            search.threads,
            report.stitched.bars,
        );
    }
    if args.json {
        outln!("{}", serde_json::to_string(&report).map_err(CliError::run)?);
    } else {
        print_walk_forward(&report);
    }
    Ok(())
}

fn print_walk_forward(report: &WalkForwardReport) {
    let metric = report.objective.metric.as_str();
    let date = |ts: i64| {
        stratbox_engine::time::format_rfc3339_secs(ts)
            .get(..16)
            .unwrap_or_default()
            .to_string()
    };
    outln!(
        "{:>6}  {:<34} {:<34} {:<36} {:>12} {:>10} {:>10} {:>7}",
        "window",
        "train",
        "test",
        "params",
        format!("is {metric}"),
        "oos ret%",
        "oos sharpe",
        "trades"
    );
    for w in &report.windows {
        let (params, score, ret, sharpe, trades) = match &w.chosen {
            Some(c) => {
                let params: Vec<String> =
                    c.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                let o = &c.out_of_sample;
                (
                    params.join(" "),
                    cell(Some(c.score)),
                    cell(o.get(1)),
                    cell(o.get(7)),
                    o.num_trades().to_string(),
                )
            }
            None => (
                "(none ranked: flat)".into(),
                "n/a".into(),
                "n/a".into(),
                "n/a".into(),
                "0".into(),
            ),
        };
        outln!(
            "{:>6}  {:<34} {:<34} {:<36} {:>12} {:>10} {:>10} {:>7}",
            w.index + 1,
            format!("{}..{}", date(w.train.start_ts), date(w.train.end_ts)),
            format!("{}..{}", date(w.test.start_ts), date(w.test.end_ts)),
            params,
            score,
            ret,
            sharpe,
            trades
        );
    }
    let s = &report.stitched;
    outln!(
        "stitched out of sample: {} bars, return {}%, sharpe {}, max drawdown {}%, {} trades, final equity {:.2}",
        s.bars,
        cell(Some(s.total_return_pct)),
        cell(s.sharpe),
        cell(Some(s.max_drawdown_pct)),
        s.num_trades,
        s.final_equity
    );
    outln!(
        "walk-forward efficiency: {} (out-of-sample {}% a year over in-sample {}% a year)",
        cell(report.efficiency),
        cell(report.out_of_sample_annualized_return_pct),
        cell(report.in_sample_annualized_return_pct)
    );
}

/// `--range NAME=MIN:MAX[:STEP]` and `--values NAME=V1,V2` as a space.
fn parse_space(
    ranges: &[String],
    values: &[String],
) -> Result<BTreeMap<String, DimensionSpec>, CliError> {
    let mut dims = BTreeMap::new();
    let split = |flag: &str, item: &str| -> Result<(String, String), CliError> {
        let (name, rest) = item
            .split_once('=')
            .ok_or_else(|| CliError::input(anyhow!("{flag} `{item}`: expected NAME=...")))?;
        let name = name.trim();
        if name.is_empty() {
            return Err(CliError::input(anyhow!(
                "{flag} `{item}`: the name is empty"
            )));
        }
        Ok((name.to_string(), rest.trim().to_string()))
    };
    for item in ranges {
        let (name, rest) = split("--range", item)?;
        let parts: Vec<&str> = rest.split(':').collect();
        let number = |s: &str| {
            s.trim()
                .parse::<f64>()
                .map_err(|_| CliError::input(anyhow!("--range {name}: `{s}` is not a number")))
        };
        let dim = match parts.as_slice() {
            [min, max] => DimensionSpec::Range {
                min: number(min)?,
                max: number(max)?,
                step: None,
            },
            [min, max, step] => DimensionSpec::Range {
                min: number(min)?,
                max: number(max)?,
                step: Some(number(step)?),
            },
            _ => {
                return Err(CliError::input(anyhow!(
                    "--range {name}: expected MIN:MAX or MIN:MAX:STEP, got `{rest}`"
                )))
            }
        };
        if dims.insert(name.clone(), dim).is_some() {
            return Err(CliError::input(anyhow!("--range {name}: given twice")));
        }
    }
    for item in values {
        let (name, rest) = split("--values", item)?;
        let list = rest
            .split(',')
            .map(|v| {
                let v = v.trim();
                // JSON for numbers and bools; anything else is refused by
                // the schema check with the param's type.
                serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.into()))
            })
            .collect();
        if dims
            .insert(name.clone(), DimensionSpec::Values(list))
            .is_some()
        {
            return Err(CliError::input(anyhow!(
                "--values {name}: the param is already searched"
            )));
        }
    }
    Ok(dims)
}

/// The top rows with their full reports (re-run: a sweep keeps metrics
/// only), as `stratbox backtest --json` would print them.
fn top_json(
    factory: &dyn StrategyFactory,
    table: &Table,
    combos: &[Combination],
    top: usize,
    in_sample: Data<'_>,
    out_of_sample: Option<Data<'_>>,
    config: &BacktestConfig,
) -> Result<String, CliError> {
    let mut rows = Vec::new();
    for ranked in table.top(top) {
        let params: &Params = &combos[ranked.row.index].params;
        let report = full_report_of(factory, params, in_sample, config).ok();
        let oos_report = match out_of_sample {
            Some(d) => full_report_of(factory, params, d, config).ok(),
            None => None,
        };
        let mut value = serde_json::to_value(ranked).map_err(CliError::run)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert(
                "report".into(),
                serde_json::to_value(report).map_err(CliError::run)?,
            );
            if out_of_sample.is_some() {
                obj.insert(
                    "oos_report".into(),
                    serde_json::to_value(oos_report).map_err(CliError::run)?,
                );
            }
        }
        rows.push(value);
    }
    let timeframe = config
        .timeframe_secs
        .or_else(|| in_sample.timeframe_secs())
        .unwrap_or(60);
    let out = serde_json::json!({
        "combinations": table.rows.len(),
        "objective": table.objective,
        "deflated_sharpe": table.deflated_sharpe(timeframe),
        "top": rows,
    });
    serde_json::to_string(&out).map_err(CliError::run)
}

fn cell(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}"))
}

fn print_top(table: &Table, top: usize) {
    let holdout = table.rows.iter().any(|r| r.row.oos.is_some());
    let metric = table.objective.metric.as_str();
    let mut header = format!(
        "{:>5}  {:<40} {:>12} {:>10} {:>9} {:>7}",
        "rank", "params", metric, "return%", "maxdd%", "trades"
    );
    if holdout {
        header.push_str(&format!(
            " {:>12} {:>10}",
            format!("oos {metric}"),
            "oos ret%"
        ));
    }
    outln!("{header}");
    let index = stratbox_engine::optimize::METRICS
        .iter()
        .position(|m| *m == metric)
        .unwrap_or(0);
    for r in table.top(top) {
        let params: Vec<String> = r
            .row
            .params
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let m = r.row.metrics.as_ref();
        let get = |i: usize| m.and_then(|m| m.get(i));
        let mut line = format!(
            "{:>5}  {:<40} {:>12} {:>10} {:>9} {:>7}",
            r.rank.map_or_else(|| "-".into(), |n| n.to_string()),
            params.join(" "),
            cell(get(index)),
            cell(get(1)),
            cell(get(4)),
            get(10).map_or_else(|| "n/a".into(), |n| format!("{n}")),
        );
        if holdout {
            let o = r.row.oos.as_ref();
            line.push_str(&format!(
                " {:>12} {:>10}",
                cell(o.and_then(|o| o.get(index))),
                cell(o.and_then(|o| o.get(1)))
            ));
        }
        if let Some(e) = &r.row.error {
            line.push_str(&format!("  error: {e}"));
        }
        outln!("{line}");
    }
}

/// A progress bar on standard error, redrawn at most every 100 ms.
struct Progress<'a> {
    total: usize,
    shown: bool,
    started: Instant,
    last_ms: AtomicU64,
    label: &'a str,
}

impl<'a> Progress<'a> {
    fn new(total: usize, shown: bool, label: &'a str) -> Self {
        Self {
            total,
            shown,
            started: Instant::now(),
            last_ms: AtomicU64::new(0),
            label,
        }
    }

    fn update(&self, done: usize) {
        if !self.shown {
            return;
        }
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_ms.load(Ordering::Relaxed);
        if (now < last + 100 && done < self.total)
            || self
                .last_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let width = 30;
        let filled = done * width / self.total.max(1);
        let rate = done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\r{}[{}{}] {done}/{} {rate:.0}/s ",
            self.label,
            "#".repeat(filled),
            "-".repeat(width - filled),
            self.total
        );
    }

    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

/// The bayes method's progress on standard error: trials done and the
/// best so far, after each batch (redrawn on a terminal, a line each
/// otherwise).
struct BestSoFar<'a> {
    objective: &'a Objective,
    trials: usize,
    quiet: bool,
    terminal: bool,
    label: &'a str,
}

impl<'a> BestSoFar<'a> {
    fn new(objective: &'a Objective, trials: usize, quiet: bool, label: &'a str) -> Self {
        Self {
            objective,
            trials,
            quiet,
            terminal: std::io::stderr().is_terminal(),
            label,
        }
    }

    fn update(&self, rows: &[Row]) {
        if self.quiet {
            return;
        }
        let best = rows
            .iter()
            .filter_map(|r| Some((self.objective.score(r.metrics.as_ref()?)?, r)))
            // The first of equal scores, as the ranking breaks ties.
            .reduce(|a, b| {
                if self.objective.better(b.0, a.0).is_lt() {
                    b
                } else {
                    a
                }
            });
        let best = match best {
            Some((score, row)) => {
                let params: Vec<String> =
                    row.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!(
                    "best {} {score:.3} ({})",
                    self.objective.metric,
                    params.join(" ")
                )
            }
            None => "no ranked trial yet".into(),
        };
        let line = format!(
            "{}trials {}/{}, {best}",
            self.label,
            rows.len(),
            self.trials
        );
        if self.terminal {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }

    fn finish(&self) {
        if self.terminal && !self.quiet {
            eprintln!();
        }
    }
}

/// `stratbox demo`'s sweep: a 5 x 5 grid of ema-crossover over the demo's
/// candles through the queue, with a hold-out; prints the top 5.
pub(super) fn demo(
    client: &super::client::Client,
    strategy_id: &serde_json::Value,
    interrupted: &dyn Fn() -> bool,
) -> Result<u64, CliError> {
    let request = serde_json::json!({
        "strategy_id": strategy_id, "symbol": "BTCUSDT", "timeframe": "1h",
        "start_date": "2024-01-01T00:00:00Z", "end_date": "2024-12-31T00:00:00Z",
        "initial_capital": 10000.0, "leverage": 1, "commission": 0.0006,
        "config": {"name": "EMA sweep", "params": {}},
        "search_space": {"fast_period": {"min": 5, "max": 25, "step": 5},
                         "slow_period": {"min": 30, "max": 70, "step": 10}},
        "constraint": "fast_period < slow_period",
        "objective": {"metric": "sharpe", "direction": "maximize"},
        "min_trades": 3,
        "holdout": {"split": "2024-10-01T00:00:00Z"}});
    let submitted = client.post_json("/api/v1/queue/optimization/create-and-run", &request)?;
    let id = submitted["optimization_id"]
        .as_u64()
        .ok_or_else(|| CliError::run(anyhow!("no optimization_id in {submitted}")))?;
    outln!(
        "submitted optimization {id}: 25 combinations of fast_period x slow_period, ranked by \
         sharpe up to 2024-10-01, the rest held out"
    );
    let started = Instant::now();
    let result = loop {
        if interrupted() {
            return Err(CliError::run(anyhow!("interrupted")));
        }
        let result = client.get(&format!("/api/v1/optimizations/{id}?top=5"))?;
        match result["status"].as_str() {
            Some("completed") => break result,
            Some("failed" | "cancelled") => {
                return Err(CliError::run(anyhow!(
                    "optimization {id} ended {}: {}",
                    result["status"],
                    result["error"]
                )))
            }
            _ => {}
        }
        if started.elapsed() > std::time::Duration::from_secs(300) {
            return Err(CliError::run(anyhow!(
                "optimization {id} not done: {result}"
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    outln!(
        "completed in {:.2} s; top 5 (in-sample sharpe, out-of-sample sharpe):",
        started.elapsed().as_secs_f64()
    );
    for row in result["top"].as_array().into_iter().flatten() {
        let params = &row["params"];
        let num = |v: &serde_json::Value| v.as_f64().map_or("n/a".into(), |v| format!("{v:.3}"));
        outln!(
            "  {}. fast_period={} slow_period={}  sharpe {}  oos sharpe {}",
            row["rank"],
            params["fast_period"],
            params["slow_period"],
            num(&row["metrics"]["sharpe"]),
            num(&row["oos"]["sharpe"])
        );
    }
    Ok(id)
}
