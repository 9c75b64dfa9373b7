//! Running many param sets against one strategy factory (one compiled
//! plugin, or a native reference) and one loaded candle range, on several
//! threads. Nothing is recompiled or reloaded per combination: each run is
//! a fresh instance over the same candles.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::objective::Summary;
use super::rank::Row;
use super::space::Combination;
use crate::candles::Candles;
use crate::perp::PerpConfig;
use crate::portfolio::{PortfolioStrategy, Universe};
use crate::{BacktestConfig, Description, EngineError, Market, Params, Report, Strategy};

/// Makes fresh strategy instances with given params.
pub trait StrategyFactory: Sync {
    fn description(&self) -> &Description;
    /// An instance limited for a run of `bars` bars.
    fn build(&self, params: &Params, bars: usize) -> Result<Box<dyn Strategy + '_>, EngineError>;
    /// An instance of a strategy over several symbols, for a run over
    /// `universe` on `market`. A one-symbol strategy has none.
    fn build_portfolio(
        &self,
        _params: &Params,
        _universe: &Universe,
        _market: Market,
    ) -> Result<Box<dyn PortfolioStrategy + '_>, EngineError> {
        Err(EngineError::InvalidConfig {
            field: "symbols",
            message: format!("{} trades one symbol", self.description().name),
        })
    }
    /// Who made the report (`report.strategy`).
    fn info(&self, params: &Params) -> crate::StrategyInfo;
}

/// What an optimization runs on: one symbol's candles, or several
/// symbols on one timeline with each one's perpetual settings (empty:
/// the config's for every symbol).
#[derive(Clone, Copy)]
pub enum Data<'a> {
    Series(&'a Candles),
    Portfolio(&'a Universe, &'a [PerpConfig]),
}

impl Data<'_> {
    /// Whether there is no bar at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bars (steps of a portfolio's timeline).
    pub fn len(&self) -> usize {
        match self {
            Data::Series(candles) => candles.len(),
            Data::Portfolio(universe, _) => universe.steps(),
        }
    }

    /// The bar length, detected as the engine would.
    pub fn timeframe_secs(&self) -> Option<i64> {
        match self {
            Data::Series(candles) => candles.timeframe_secs(),
            Data::Portfolio(universe, _) => universe.timeframe_secs,
        }
    }
}

/// One full backtest: the report `stratbox backtest` gives for these
/// params and candles.
pub fn full_report(
    factory: &dyn StrategyFactory,
    params: &Params,
    candles: &Candles,
    config: &BacktestConfig,
) -> Result<Report, EngineError> {
    full_report_of(factory, params, Data::Series(candles), config)
}

/// [`full_report`] over any [`Data`]: one symbol, or several.
pub fn full_report_of(
    factory: &dyn StrategyFactory,
    params: &Params,
    data: Data<'_>,
    config: &BacktestConfig,
) -> Result<Report, EngineError> {
    let mut report = Part::new(data, config).run(factory, params)?;
    report.strategy = Some(factory.info(params));
    Ok(report)
}

/// Runs one combination in sample (and out of sample with a hold-out).
/// Errors `fatal` says so end the whole evaluation (a cancel, a deadline);
/// others are kept in the row.
pub fn evaluate_one(
    factory: &dyn StrategyFactory,
    combo: &Combination,
    in_sample: &Candles,
    out_of_sample: Option<&Candles>,
    config: &BacktestConfig,
    fatal: &dyn Fn(&EngineError) -> bool,
) -> Result<Row, EngineError> {
    let is = Part::new(Data::Series(in_sample), config);
    let oos = out_of_sample.map(|c| Part::new(Data::Series(c), config));
    evaluate_parts(factory, combo, &is, oos.as_ref(), fatal)
}

/// The data and the config to run it with, the timeframe detected once
/// per data set rather than in every run (the engine would detect the
/// same value).
struct Part<'a> {
    data: Data<'a>,
    config: BacktestConfig,
}

impl<'a> Part<'a> {
    fn new(data: Data<'a>, config: &BacktestConfig) -> Self {
        Part {
            data,
            config: BacktestConfig {
                timeframe_secs: config.timeframe_secs.or_else(|| data.timeframe_secs()),
                ..config.clone()
            },
        }
    }

    fn run(&self, factory: &dyn StrategyFactory, params: &Params) -> Result<Report, EngineError> {
        match self.data {
            Data::Series(candles) => {
                let mut strategy = factory.build(params, candles.len())?;
                crate::run_backtest(candles, strategy.as_mut(), &self.config)
            }
            Data::Portfolio(universe, perps) => {
                let mut strategy = factory.build_portfolio(params, universe, self.config.market)?;
                crate::portfolio::run_portfolio(
                    universe,
                    strategy.as_mut(),
                    &self.config,
                    perps,
                    &mut |_| {},
                )
            }
        }
    }
}

fn evaluate_parts(
    factory: &dyn StrategyFactory,
    combo: &Combination,
    in_sample: &Part<'_>,
    out_of_sample: Option<&Part<'_>>,
    fatal: &dyn Fn(&EngineError) -> bool,
) -> Result<Row, EngineError> {
    let mut row = Row::new(combo.index, &combo.params);
    let run = |part: &Part<'_>| -> Result<Result<Summary, String>, EngineError> {
        match part.run(factory, &combo.params) {
            Ok(report) => Ok(Ok(Summary::of(&report))),
            Err(e) if fatal(&e) => Err(e),
            Err(e) => Ok(Err(e.to_string())),
        }
    };
    row.bars = Some(in_sample.data.len());
    match run(in_sample)? {
        Ok(summary) => row.metrics = Some(summary),
        Err(message) => {
            row.error = Some(message);
            return Ok(row);
        }
    }
    if let Some(oos) = out_of_sample {
        match run(oos)? {
            Ok(summary) => row.oos = Some(summary),
            Err(message) => row.error = Some(format!("out of sample: {message}")),
        }
    }
    Ok(row)
}

/// Runs every combination on `threads` threads (at least one), calling
/// `progress(done)` after each. Rows come back in combination order.
#[allow(clippy::too_many_arguments)]
pub fn evaluate(
    factory: &dyn StrategyFactory,
    combos: &[Combination],
    in_sample: &Candles,
    out_of_sample: Option<&Candles>,
    config: &BacktestConfig,
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
    fatal: &(dyn Fn(&EngineError) -> bool + Sync),
) -> Result<Vec<Row>, EngineError> {
    evaluate_data(
        factory,
        combos,
        Data::Series(in_sample),
        out_of_sample.map(Data::Series),
        config,
        threads,
        progress,
        fatal,
    )
}

/// [`evaluate`] over any [`Data`]: one symbol, or several.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_data(
    factory: &dyn StrategyFactory,
    combos: &[Combination],
    in_sample: Data<'_>,
    out_of_sample: Option<Data<'_>>,
    config: &BacktestConfig,
    threads: usize,
    progress: &(dyn Fn(usize) + Sync),
    fatal: &(dyn Fn(&EngineError) -> bool + Sync),
) -> Result<Vec<Row>, EngineError> {
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<EngineError>> = Mutex::new(None);
    let threads = threads.clamp(1, combos.len().max(1));
    let is = Part::new(in_sample, config);
    let oos = out_of_sample.map(|d| Part::new(d, config));
    let mut rows: Vec<(usize, Row)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(combo) = combos.get(i) else { break };
                        match evaluate_parts(factory, combo, &is, oos.as_ref(), fatal) {
                            Ok(row) => mine.push((i, row)),
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                let mut slot = failure.lock().unwrap_or_else(|p| p.into_inner());
                                slot.get_or_insert(e);
                                break;
                            }
                        }
                        progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            // A panicking run is a bug; surface it rather than drop rows.
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    rows.sort_by_key(|(i, _)| *i);
    Ok(rows.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::{factory::ReferenceFactory, Method, Space};
    use crate::ParamValue::{Bool, Int};
    use std::collections::BTreeMap;

    #[test]
    fn every_row_is_the_plain_backtest_of_its_params_on_any_thread_count() {
        let candles = crate::candles::synth(3_000, 5, 3_600, 1_704_067_200, 100.0);
        let factory = ReferenceFactory::new("ema-crossover").unwrap();
        let dims = serde_json::from_value(serde_json::json!({
            "fast_period": [3, 5, 8],
            "slow_period": {"min": 10, "max": 30, "step": 10},
        }))
        .unwrap();
        let space =
            Space::new(&factory.description().params, &BTreeMap::new(), &dims, 100).unwrap();
        let combos = space.combinations(Method::Grid, None, 100).unwrap();
        let config = BacktestConfig::default();
        let never = |_: &EngineError| false;
        let one = evaluate(
            &factory,
            &combos,
            &candles,
            None,
            &config,
            1,
            &|_| {},
            &never,
        )
        .unwrap();
        let three = evaluate(
            &factory,
            &combos,
            &candles,
            None,
            &config,
            3,
            &|_| {},
            &never,
        )
        .unwrap();
        assert_eq!(one, three);
        assert_eq!(one.len(), 9);
        for (combo, row) in combos.iter().zip(&one) {
            assert_eq!(row.index, combo.index);
            let params = Params(vec![
                (
                    "fast_period".into(),
                    combo.params.get("fast_period").unwrap(),
                ),
                (
                    "slow_period".into(),
                    combo.params.get("slow_period").unwrap(),
                ),
                ("allow_short".into(), Bool(false)),
            ]);
            let report = full_report(&factory, &params, &candles, &config).unwrap();
            assert_eq!(row.metrics, Some(Summary::of(&report)));
        }
        assert_eq!(one[0].params[0], ("fast_period".into(), Int(3)));
    }

    #[test]
    fn holdout_runs_both_parts_separately() {
        let candles = crate::candles::synth(2_000, 9, 3_600, 1_704_067_200, 100.0);
        let factory = ReferenceFactory::new("ema-crossover").unwrap();
        let (is, oos) = crate::optimize::Holdout::parse("0.25")
            .unwrap()
            .split(&candles)
            .unwrap();
        let combo = Combination {
            index: 0,
            params: Params::validate(&factory.description().params, &BTreeMap::new()).unwrap(),
        };
        let config = BacktestConfig::default();
        let row = evaluate_one(&factory, &combo, &is, Some(&oos), &config, &|_| false).unwrap();
        let plain_is = full_report(&factory, &combo.params, &is, &config).unwrap();
        let plain_oos = full_report(&factory, &combo.params, &oos, &config).unwrap();
        assert_eq!(row.metrics, Some(Summary::of(&plain_is)));
        assert_eq!(row.oos, Some(Summary::of(&plain_oos)));
        assert_eq!(plain_oos.bars, 500);
    }

    /// The native rotation as a portfolio factory (params `lookback`,
    /// `rebalance`, `top_k`).
    struct Rotation(Description);

    impl StrategyFactory for Rotation {
        fn description(&self) -> &Description {
            &self.0
        }
        fn build(&self, _: &Params, _: usize) -> Result<Box<dyn Strategy + '_>, EngineError> {
            Err(EngineError::Protocol("a portfolio strategy".into()))
        }
        fn build_portfolio(
            &self,
            params: &Params,
            _universe: &Universe,
            _market: Market,
        ) -> Result<Box<dyn PortfolioStrategy + '_>, EngineError> {
            let int = |n| match params.get(n) {
                Some(Int(v)) => v as usize,
                _ => 1,
            };
            Ok(Box::new(crate::reference::MomentumRotation::new(
                int("lookback"),
                int("rebalance"),
                int("top_k"),
            )))
        }
        fn info(&self, params: &Params) -> crate::StrategyInfo {
            crate::StrategyInfo {
                name: "rotation".into(),
                version: "test".into(),
                sha256: None,
                params: params.to_map(),
            }
        }
    }

    #[test]
    fn portfolio_rows_are_the_plain_portfolio_runs_and_one_symbol_factories_refuse() {
        let spec = |name: &str, default: i64| crate::ParamSpec {
            name: name.into(),
            kind: crate::ParamType::Int,
            default: Int(default),
            min: Some(1.0),
            max: Some(500.0),
            step: Some(1.0),
            help: String::new(),
        };
        let factory = Rotation(Description {
            name: "rotation".into(),
            version: "test".into(),
            summary: String::new(),
            params: vec![
                spec("lookback", 24),
                spec("rebalance", 12),
                spec("top_k", 2),
            ],
            columns: vec![crate::Column::Close],
        });
        let universe = Universe::new(
            (0..4)
                .map(|k| {
                    let c = crate::candles::synth(1_500, 40 + k, 3_600, 1_704_067_200, 100.0);
                    (format!("S{k}"), std::sync::Arc::new(c))
                })
                .collect(),
        )
        .unwrap();
        let dims = serde_json::from_value(serde_json::json!({
            "lookback": [12, 48], "top_k": [1, 2, 3],
        }))
        .unwrap();
        let space =
            Space::new(&factory.description().params, &BTreeMap::new(), &dims, 100).unwrap();
        let combos = space.combinations(Method::Grid, None, 100).unwrap();
        let config = BacktestConfig::default();
        let data = Data::Portfolio(&universe, &[]);
        let never = |_: &EngineError| false;
        let rows =
            evaluate_data(&factory, &combos, data, None, &config, 2, &|_| {}, &never).unwrap();
        assert_eq!(rows.len(), 6);
        let mut distinct = std::collections::BTreeSet::new();
        for (combo, row) in combos.iter().zip(&rows) {
            let mut strategy = factory
                .build_portfolio(&combo.params, &universe, Market::Spot)
                .unwrap();
            let report = crate::portfolio::run_portfolio(
                &universe,
                strategy.as_mut(),
                &config,
                &[],
                &mut |_| {},
            )
            .unwrap();
            assert!(report.num_trades > 0);
            assert_eq!(row.metrics, Some(Summary::of(&report)));
            assert_eq!(row.bars, Some(1_500));
            distinct.insert(report.final_equity.to_bits());
        }
        assert!(distinct.len() > 1, "the params matter");
        // A one-symbol strategy over several symbols: every row says why.
        let ema = ReferenceFactory::new("ema-crossover").unwrap();
        let combo = Combination {
            index: 0,
            params: Params::validate(&ema.description().params, &BTreeMap::new()).unwrap(),
        };
        let rows = evaluate_data(&ema, &[combo], data, None, &config, 1, &|_| {}, &never).unwrap();
        let error = rows[0].error.as_deref().unwrap();
        assert!(error.contains("EMA Crossover trades one symbol"), "{error}");
    }
}
