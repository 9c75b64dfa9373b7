//! Walk-forward analysis: the loaded bars cut into windows, each an
//! in-sample (train) part optimized on its own and the out-of-sample
//! (test) part right after it, traded with the train part's best params;
//! the test parts stitched into one out-of-sample account with its own
//! report. The rules are docs/conventions/engine.md, "Walk-forward".
//!
//! - **Windows.** Lengths are bars (`2000`) or durations (`90d`, converted
//!   to bars at the timeframe). Test windows tile the bars from `train`
//!   to the last, in order, each `test` bars long except the last, which
//!   takes what is left (at least one bar). A rolling window's train part
//!   is the `train` bars right before its test part; an anchored one's
//!   starts at bar 0. `step` is accepted only equal to `test`: a step
//!   shorter would overlap the test windows, a longer one leave gaps, and
//!   neither could be stitched into one curve.
//! - **Warm-up.** A test window's strategy first sees its train bars (the
//!   bars its params were chosen on, all before the test start) with a
//!   flat account and its orders discarded, then trades from the first
//!   test bar. It is handed candles that end at its test window's last
//!   bar: nothing later exists for it.
//! - **Stitching.** One backtest over every test bar, one account: each
//!   window's strategy (a fresh instance with its params) trades its own
//!   test bars with the equity the previous window left. At a window's
//!   last bar its orders are replaced by "cancel resting orders, close the
//!   position", so the next window starts flat at its first open, after
//!   paying that close's commission. The report's statistics are the
//!   engine's own over that single equity curve.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::error::OptimizeError;
use super::objective::{Objective, Summary, METRICS};
use super::rank::Table;
use super::run::StrategyFactory;
use crate::candles::Candles;
use crate::{
    Action, BacktestConfig, EngineError, ParamValue, Params, Plan, PortfolioView, Report, Strategy,
    StrategyError,
};

/// Windows one walk-forward may have: each is a whole optimization, and a
/// test part of a few bars tells nothing.
pub const MAX_WINDOWS: usize = 1_000;

/// A length in bars, or a duration converted to bars at the timeframe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Length {
    Bars(usize),
    Secs(i64),
}

const UNITS: [(char, i64); 4] = [('w', 604_800), ('d', 86_400), ('h', 3_600), ('m', 60)];

impl Length {
    /// `2000` (bars) or a whole number of minutes, hours, days or weeks:
    /// `90m`, `12h`, `90d`, `4w`. Errors name `field`.
    pub fn parse(text: &str, field: &str) -> Result<Length, OptimizeError> {
        let text = text.trim();
        let bad = || {
            OptimizeError::new(
                field,
                format!("`{text}` is neither a number of bars nor a duration like 90d, 12h, 4w"),
            )
        };
        if let Ok(bars) = text.parse::<usize>() {
            return positive(Length::Bars(bars), field);
        }
        let unit = text.chars().last().ok_or_else(bad)?;
        let (_, secs) = UNITS.iter().find(|(u, _)| *u == unit).ok_or_else(bad)?;
        let count: i64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
        let total = count.checked_mul(*secs).ok_or_else(bad)?;
        positive(Length::Secs(total), field)
    }

    /// Bars at `timeframe_secs`; a duration must be a whole number of bars.
    pub fn bars(self, timeframe_secs: i64, field: &str) -> Result<usize, OptimizeError> {
        match self {
            Length::Bars(n) => Ok(n),
            Length::Secs(s) if timeframe_secs > 0 && s % timeframe_secs == 0 => {
                Ok((s / timeframe_secs) as usize)
            }
            Length::Secs(_) => Err(OptimizeError::new(
                field,
                format!(
                    "{self} is not a whole number of {} bars",
                    crate::candles::format_timeframe(timeframe_secs)
                ),
            )),
        }
    }
}

fn positive(length: Length, field: &str) -> Result<Length, OptimizeError> {
    match length {
        Length::Bars(0) | Length::Secs(0) => Err(OptimizeError::new(field, "must be above 0")),
        Length::Secs(s) if s < 0 => Err(OptimizeError::new(field, "must be above 0")),
        other => Ok(other),
    }
}

impl std::fmt::Display for Length {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Length::Bars(n) => write!(f, "{n}"),
            Length::Secs(s) => {
                // The largest unit that divides it, as it was most likely typed.
                let (unit, size) = UNITS
                    .iter()
                    .find(|(_, size)| s % size == 0)
                    .copied()
                    .unwrap_or(('s', 1));
                write!(f, "{}{unit}", s / size)
            }
        }
    }
}

/// Bars as a JSON number, durations as their text (`"90d"`).
impl Serialize for Length {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Length::Bars(n) => s.serialize_u64(n as u64),
            Length::Secs(_) => s.serialize_str(&self.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Length {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bars(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bars(n) => Ok(Length::Bars(n as usize)),
            Raw::Text(t) => Length::parse(&t, "walk_forward").map_err(serde::de::Error::custom),
        }
    }
}

/// The windows' lengths and kind, as the CLI's `--walk-forward` and the
/// API's `walk_forward` object give them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WalkForward {
    pub train: Length,
    pub test: Length,
    /// Must equal `test` (see the module's doc); defaults to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<Length>,
    /// Train parts all start at bar 0 (else they roll).
    #[serde(default)]
    pub anchored: bool,
}

/// One window: bar ranges of the loaded candles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub train: Range<usize>,
    pub test: Range<usize>,
}

impl WalkForward {
    /// `train=90d,test=30d[,step=30d][,anchored]`. Errors name
    /// `walk_forward.<part>`.
    pub fn parse(text: &str) -> Result<WalkForward, OptimizeError> {
        let (mut train, mut test, mut step, mut anchored) = (None, None, None, false);
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("train", v)) => train = Some(Length::parse(v, "walk_forward.train")?),
                Some(("test", v)) => test = Some(Length::parse(v, "walk_forward.test")?),
                Some(("step", v)) => step = Some(Length::parse(v, "walk_forward.step")?),
                None if part == "anchored" => anchored = true,
                None if part == "rolling" => anchored = false,
                _ => {
                    return Err(OptimizeError::new(
                        "walk_forward",
                        format!(
                        "unknown part `{part}`; expected train=LEN, test=LEN, step=LEN, anchored"
                    ),
                    ))
                }
            }
        }
        let missing = |name: &str| {
            OptimizeError::new(
                format!("walk_forward.{name}"),
                "is required (bars like 2000 or a duration like 90d)",
            )
        };
        Ok(WalkForward {
            train: train.ok_or_else(|| missing("train"))?,
            test: test.ok_or_else(|| missing("test"))?,
            step,
            anchored,
        })
    }

    /// (train bars, test bars) at `timeframe_secs`, checked: both above 0,
    /// `step` equal to `test`.
    pub fn lengths(&self, timeframe_secs: i64) -> Result<(usize, usize), OptimizeError> {
        let train = positive(self.train, "walk_forward.train")?
            .bars(timeframe_secs, "walk_forward.train")?;
        let test =
            positive(self.test, "walk_forward.test")?.bars(timeframe_secs, "walk_forward.test")?;
        if let Some(step) = self.step {
            let step =
                positive(step, "walk_forward.step")?.bars(timeframe_secs, "walk_forward.step")?;
            if step != test {
                return Err(OptimizeError::new(
                    "walk_forward.step",
                    format!(
                        "must equal test ({test} bars), got {step}: the test windows must \
                         follow each other without overlap or gap to be stitched"
                    ),
                ));
            }
        }
        if train == 0 || test == 0 {
            return Err(OptimizeError::new(
                if train == 0 {
                    "walk_forward.train"
                } else {
                    "walk_forward.test"
                },
                "is less than one bar",
            ));
        }
        Ok((train, test))
    }

    /// The windows over `bars` bars: test windows tile `train..bars`, the
    /// last one shorter when the rest is not a multiple of `test`.
    pub fn windows(&self, bars: usize, timeframe_secs: i64) -> Result<Vec<Window>, OptimizeError> {
        let (train, test) = self.lengths(timeframe_secs)?;
        if bars <= train {
            return Err(OptimizeError::new(
                "walk_forward.train",
                format!("{train} bars leave nothing to test in the {bars} bars loaded"),
            ));
        }
        let count = (bars - train).div_ceil(test);
        if count > MAX_WINDOWS {
            return Err(OptimizeError::new(
                "walk_forward.test",
                format!("makes {count} windows of the {bars} bars loaded; at most {MAX_WINDOWS}"),
            ));
        }
        Ok((0..count)
            .map(|k| {
                let start = train + k * test;
                Window {
                    train: if self.anchored { 0 } else { k * test }..start,
                    test: start..(start + test).min(bars),
                }
            })
            .collect())
    }
}

/// Bars `r` of `candles`, copied.
pub fn slice(candles: &Candles, r: Range<usize>) -> Candles {
    Candles {
        ts: candles.ts[r.clone()].to_vec(),
        open: candles.open[r.clone()].to_vec(),
        high: candles.high[r.clone()].to_vec(),
        low: candles.low[r.clone()].to_vec(),
        close: candles.close[r.clone()].to_vec(),
        volume: candles.volume[r].to_vec(),
    }
}

/// The first and last bar of a part, and how many it holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Span {
    pub start_ts: i64,
    pub end_ts: i64,
    pub bars: usize,
}

impl Span {
    fn of(candles: &Candles, r: &Range<usize>) -> Span {
        Span {
            start_ts: candles.ts[r.start],
            end_ts: candles.ts[r.end - 1],
            bars: r.len(),
        }
    }
}

/// A window's choice: the rank-1 row of its in-sample optimization.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chosen {
    #[serde(with = "super::rank::ordered")]
    pub params: Vec<(String, ParamValue)>,
    /// The objective's value in sample.
    pub score: f64,
    pub in_sample: Option<Summary>,
    /// Its own test bars alone (after the same warm-up), from the initial
    /// capital: what `stratbox backtest` gives for them.
    pub out_of_sample: Summary,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowReport {
    pub index: usize,
    pub train: Span,
    pub test: Span,
    /// Combinations run in sample, and how many were ranked.
    pub combinations: usize,
    pub ranked: usize,
    /// `None` when no combination was ranked: the window stays flat.
    pub chosen: Option<Chosen>,
    /// Of the window's rank-1 row ([`Table::deflated_sharpe`]).
    pub deflated_sharpe: Option<f64>,
}

/// The whole walk-forward: `stratbox optimize --walk-forward --json`, and
/// `walk_forward` in `GET /api/v1/optimizations/{id}`, byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WalkForwardReport {
    pub train_bars: usize,
    pub test_bars: usize,
    pub anchored: bool,
    pub objective: Objective,
    /// Out-of-sample over in-sample annualised return ([`efficiency`]).
    pub efficiency: Option<f64>,
    pub in_sample_annualized_return_pct: Option<f64>,
    pub out_of_sample_annualized_return_pct: Option<f64>,
    pub windows: Vec<WindowReport>,
    /// The stitched out-of-sample account: every test bar, one report.
    pub stitched: Report,
}

/// Simple (not compounded) annualised return: `total_return_pct x
/// periods_per_year / bars`. Compounding a two-month window to a year
/// would inflate it; the ratio of two simple rates is what the
/// walk-forward efficiency of the literature (Pardo) compares.
pub fn annualized_return_pct(total_return_pct: f64, bars: usize, timeframe_secs: i64) -> f64 {
    let per_year = crate::stats::periods_per_year(timeframe_secs as f64);
    total_return_pct * per_year / bars.max(1) as f64
}

/// Walk-forward efficiency: the stitched out-of-sample annualised return
/// over the mean (in window order) of the chosen params' in-sample
/// annualised returns, each [`annualized_return_pct`] over its own bars.
/// 1 means the strategy earned out of sample what its optimization
/// promised; near 0 or below, the in-sample results were mostly fit.
/// `None` when no window chose params or the in-sample mean is not above
/// 0 (a ratio to a loss says nothing).
pub fn efficiency(oos_annualized: f64, is_annualized: &[f64]) -> Option<f64> {
    if is_annualized.is_empty() {
        return None;
    }
    let mut total = 0.0;
    for &r in is_annualized {
        total += r;
    }
    let mean = total / is_annualized.len() as f64;
    (mean > 0.0 && oos_annualized.is_finite()).then(|| oos_annualized / mean)
}

/// Builds the report from each window's ranked in-sample table (in window
/// order): runs each window's choice on its test bars alone, then the
/// stitched account over all of them. `candles` are the bars the windows
/// were cut from.
pub fn report(
    factory: &dyn StrategyFactory,
    candles: &Candles,
    spec: &WalkForward,
    windows: &[Window],
    tables: &[Table],
    config: &BacktestConfig,
) -> Result<WalkForwardReport, EngineError> {
    let bad = |e: OptimizeError| EngineError::InvalidConfig {
        field: "walk_forward",
        message: e.to_string(),
    };
    let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
        return Err(bad(OptimizeError::new("walk_forward", "no windows")));
    };
    if tables.len() != windows.len() {
        return Err(bad(OptimizeError::new(
            "walk_forward",
            format!("{} tables for {} windows", tables.len(), windows.len()),
        )));
    }
    // One timeframe for every part, however short: the whole range's.
    let timeframe = config
        .timeframe_secs
        .or_else(|| candles.timeframe_secs())
        .unwrap_or(60);
    let config = BacktestConfig {
        timeframe_secs: Some(timeframe),
        ..config.clone()
    };
    let (train_bars, test_bars) = spec.lengths(timeframe).map_err(bad)?;
    let choices: Vec<Option<(Params, f64, &super::rank::Ranked)>> = tables
        .iter()
        .map(|t| {
            let best = t.rows.first().filter(|r| r.rank == Some(1))?;
            Some((Params(best.row.params.clone()), best.score?, best))
        })
        .collect();
    let mut out = Vec::with_capacity(windows.len());
    let mut is_annualized = Vec::new();
    for (k, ((w, table), choice)) in windows.iter().zip(tables).zip(&choices).enumerate() {
        let chosen = match choice {
            Some((params, score, ranked)) => {
                let segment = Segment::new(candles, w, w.test.start, Some(params.clone()));
                let mut alone = Stitched::new(factory, vec![segment]);
                let test = slice(candles, w.test.clone());
                let mut report = crate::run_backtest(&test, &mut alone, &config)?;
                report.strategy = Some(factory.info(params));
                let in_sample = ranked.row.metrics.clone();
                if let Some(total) = in_sample.as_ref().and_then(|m| m.get(1)) {
                    is_annualized.push(annualized_return_pct(total, w.train.len(), timeframe));
                }
                Some(Chosen {
                    params: params.0.clone(),
                    score: *score,
                    in_sample,
                    out_of_sample: Summary::of(&report),
                })
            }
            None => None,
        };
        out.push(WindowReport {
            index: k,
            train: Span::of(candles, &w.train),
            test: Span::of(candles, &w.test),
            combinations: table.rows.len(),
            ranked: table.rows.iter().filter(|r| r.rank.is_some()).count(),
            chosen,
            deflated_sharpe: table.deflated_sharpe(timeframe),
        });
    }
    let oos = first.test.start..last.test.end;
    let segments = windows
        .iter()
        .zip(&choices)
        .map(|(w, c)| {
            Segment::new(
                candles,
                w,
                first.test.start,
                c.as_ref().map(|c| c.0.clone()),
            )
        })
        .collect();
    let mut stitched = Stitched::new(factory, segments);
    let mut report = crate::run_backtest(&slice(candles, oos), &mut stitched, &config)?;
    // Who traded it: the strategy, its params per window above.
    report.strategy = Some(factory.info(&Params(Vec::new())));
    let oos_annualized = annualized_return_pct(report.total_return_pct, report.bars, timeframe);
    let is_mean = (!is_annualized.is_empty()).then(|| {
        let mut total = 0.0;
        for &r in &is_annualized {
            total += r;
        }
        total / is_annualized.len() as f64
    });
    debug_assert_eq!(METRICS[1], "total_return_pct");
    Ok(WalkForwardReport {
        train_bars,
        test_bars,
        anchored: spec.anchored,
        objective: tables[0].objective.clone(),
        efficiency: efficiency(oos_annualized, &is_annualized),
        in_sample_annualized_return_pct: is_mean,
        out_of_sample_annualized_return_pct: Some(oos_annualized),
        windows: out,
        stitched: report,
    })
}

/// One window of a stitched run: its test bars (indices into the run's
/// candles), its params, and the candles its strategy is given: its warm-up
/// (train) bars then its test bars, nothing after.
struct Segment {
    range: Range<usize>,
    warm: usize,
    candles: Candles,
    params: Option<Params>,
}

impl Segment {
    /// `w` of the loaded `candles`, in a run whose bar 0 is loaded bar `origin`.
    fn new(candles: &Candles, w: &Window, origin: usize, params: Option<Params>) -> Segment {
        Segment {
            range: w.test.start - origin..w.test.end - origin,
            warm: w.train.len(),
            candles: slice(candles, w.train.start..w.test.end),
            params,
        }
    }
}

/// The strategy of a stitched run: each segment's own instance, warmed up
/// on its train bars, trading its test bars (see the module's doc).
struct Stitched<'a> {
    factory: &'a dyn StrategyFactory,
    segments: Vec<Segment>,
    /// The segment in play and its instance (`None`: no params, flat).
    current: Option<(usize, Option<Box<dyn Strategy + 'a>>)>,
    fuel_before: u64,
    discarded: Vec<Action>,
    discarded_plan: Plan,
}

impl<'a> Stitched<'a> {
    fn new(factory: &'a dyn StrategyFactory, segments: Vec<Segment>) -> Self {
        Self {
            factory,
            segments,
            current: None,
            fuel_before: 0,
            discarded: Vec::new(),
            discarded_plan: Plan::default(),
        }
    }

    /// Makes segment `k`'s instance and walks it over the warm-up bars,
    /// flat, its orders dropped.
    fn enter(&mut self, k: usize, view: &PortfolioView<'_>) -> Result<(), StrategyError> {
        if let Some((_, Some(old))) = self.current.take() {
            self.fuel_before += old.fuel_used();
        }
        let segment = &self.segments[k];
        let Some(params) = &segment.params else {
            self.current = Some((k, None));
            return Ok(());
        };
        let mut strategy = self
            .factory
            .build(params, segment.candles.len())
            .map_err(|e| Box::new(e) as StrategyError)?;
        let mut i = 0;
        while i < segment.warm {
            self.discarded.clear();
            self.discarded_plan.clear();
            let consumed = strategy.on_bars(
                &segment.candles,
                i,
                segment.warm,
                view,
                &mut self.discarded,
                &mut self.discarded_plan,
            )?;
            if consumed == 0 || consumed > segment.warm - i {
                return Err(Box::new(EngineError::Protocol(format!(
                    "consumed {consumed} bars of a warm-up range of {}",
                    segment.warm - i
                ))));
            }
            i += consumed;
        }
        self.current = Some((k, Some(strategy)));
        Ok(())
    }
}

impl Strategy for Stitched<'_> {
    fn on_bars(
        &mut self,
        _candles: &Candles,
        start: usize,
        end: usize,
        portfolio: &PortfolioView<'_>,
        actions: &mut Vec<Action>,
        plan: &mut Plan,
    ) -> Result<usize, StrategyError> {
        let k = match self.current {
            Some((k, _)) if self.segments[k].range.contains(&start) => k,
            _ => {
                let k = self
                    .segments
                    .iter()
                    .position(|s| s.range.contains(&start))
                    .ok_or_else(|| {
                        Box::new(EngineError::Protocol(format!(
                            "bar {start} is in no window"
                        ))) as StrategyError
                    })?;
                // A new window's strategy sees no fill of the one before.
                let fresh = PortfolioView {
                    fills: &[],
                    ..*portfolio
                };
                self.enter(k, &fresh)?;
                return self.step(k, start, end, &fresh, actions, plan);
            }
        };
        self.step(k, start, end, portfolio, actions, plan)
    }

    fn fuel_used(&self) -> u64 {
        let current = match &self.current {
            Some((_, Some(s))) => s.fuel_used(),
            _ => 0,
        };
        self.fuel_before + current
    }
}

impl Stitched<'_> {
    /// One call within segment `k`, in the segment's own bar numbers.
    fn step(
        &mut self,
        k: usize,
        start: usize,
        end: usize,
        portfolio: &PortfolioView<'_>,
        actions: &mut Vec<Action>,
        plan: &mut Plan,
    ) -> Result<usize, StrategyError> {
        let segment = &self.segments[k];
        let stop = end.min(segment.range.end);
        let consumed = match &mut self.current {
            Some((_, Some(strategy))) => {
                // Run bar `i` is the segment's bar `i - range.start + warm`.
                let to_segment = |i: usize| i - segment.range.start + segment.warm;
                let to_run = |b: usize| b - segment.warm + segment.range.start;
                let consumed = strategy.on_bars(
                    &segment.candles,
                    to_segment(start),
                    to_segment(stop),
                    portfolio,
                    actions,
                    plan,
                )?;
                if consumed == 0 || consumed > stop - start {
                    return Err(Box::new(EngineError::Protocol(format!(
                        "consumed {consumed} bars of a range of {}",
                        stop - start
                    ))));
                }
                for (bar, _) in &mut plan.actions {
                    *bar = to_run(*bar);
                }
                for assumed in &mut plan.assumed {
                    assumed.bar = to_run(assumed.bar);
                }
                consumed
            }
            _ => stop - start,
        };
        if start + consumed == segment.range.end && k + 1 < self.segments.len() {
            // The window ends: whatever it ordered would fill in the next.
            actions.clear();
            actions.push(Action::CancelOrders);
            actions.push(Action::ClosePosition);
        }
        Ok(consumed)
    }
}

#[cfg(test)]
mod tests;
