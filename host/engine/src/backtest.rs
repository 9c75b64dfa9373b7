//! The bar loop: fills, strategy calls, equity marks, then the report.

use super::broker::{Broker, Costs};
use super::perp::PerpConfig;
use super::report::{EquityPoint, OpenPosition, Report, Trade};
use super::stats::{
    self, AverageTradeDuration, BuyAndHoldReturn, Cagr, CalmarRatio, DrawdownTracker, Exposure,
    MomentsAccumulator, ProfitFactor, SharpeRatio, SortinoRatio, TotalReturn, TradeReturns,
    WinRate,
};
use super::strategy::{Action, Market, Plan, Strategy, StrategyError};
use crate::candles::Candles;

/// Account and reporting settings of one backtest.
#[derive(Debug, Clone, PartialEq)]
pub struct BacktestConfig {
    pub initial_capital: f64,
    /// Fraction of notional per fill (0.0006: a typical taker fee).
    pub commission: f64,
    pub slippage_bps: f64,
    /// Position notional may reach equity times leverage.
    pub leverage: f64,
    /// Bar length for annualisation; detected from the candles when `None`.
    pub timeframe_secs: Option<i64>,
    /// Upper bound on equity curve points in the report.
    pub equity_curve_points: usize,
    /// Spot (the default: everything above, unchanged) or a linear
    /// perpetual, which uses `perp` and ignores `commission`.
    pub market: Market,
    /// Instrument, funding and mark prices of a perpetual run; unused on
    /// spot (its default allocates nothing).
    pub perp: PerpConfig,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        Self {
            initial_capital: 10_000.0,
            commission: 0.0006,
            slippage_bps: 0.0,
            leverage: 1.0,
            timeframe_secs: None,
            equity_curve_points: 1_000,
            market: Market::Spot,
            perp: PerpConfig::default(),
        }
    }
}

impl BacktestConfig {
    /// Checks every setting; the error names the field.
    pub fn check(&self) -> Result<(), EngineError> {
        let bad =
            |field: &'static str, message: String| EngineError::InvalidConfig { field, message };
        if !(self.initial_capital.is_finite() && self.initial_capital > 0.0) {
            return Err(bad(
                "initial_capital",
                format!("must be a positive number, got {}", self.initial_capital),
            ));
        }
        if !(0.0..0.1).contains(&self.commission) {
            return Err(bad(
                "commission",
                format!(
                    "must be at least 0 and below 0.1 (a fraction of notional), got {}",
                    self.commission
                ),
            ));
        }
        if !(0.0..=1_000.0).contains(&self.slippage_bps) {
            return Err(bad(
                "slippage_bps",
                format!(
                    "must be between 0 and 1000 basis points, got {}",
                    self.slippage_bps
                ),
            ));
        }
        if !(self.leverage > 0.0 && self.leverage <= 125.0) {
            return Err(bad(
                "leverage",
                format!("must be above 0 and at most 125, got {}", self.leverage),
            ));
        }
        if matches!(self.timeframe_secs, Some(t) if t <= 0) {
            return Err(bad(
                "timeframe",
                "must be a positive number of seconds".into(),
            ));
        }
        if self.equity_curve_points < 2 {
            return Err(bad("equity_curve_points", "must be at least 2".into()));
        }
        if self.market == Market::LinearPerpetual {
            self.perp.check(self.leverage)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("invalid {field}: {message}")]
    InvalidConfig {
        field: &'static str,
        message: String,
    },
    #[error("no candles to backtest")]
    NoCandles,
    /// The strategy failed; the source is the implementation's own error.
    #[error("{0}")]
    Strategy(StrategyError),
    #[error("strategy broke the engine protocol: {0}")]
    Protocol(String),
    #[error("invalid order from the strategy at bar {bar} (ts {ts}): {message}")]
    InvalidOrder {
        bar: usize,
        ts: i64,
        message: String,
    },
}

/// Smallest and largest range handed to a strategy in one call. The range
/// grows while the strategy consumes whole ranges and shrinks when it acts
/// often, so scanning ahead for resting-order triggers stays cheap.
pub(crate) const MIN_SCAN: usize = 64;
pub(crate) const MAX_SCAN: usize = 1 << 16;

/// Runs `strategy` over every bar of `candles`, which must hold
/// [`Candles::validate`] (CSV parsing, synthesis and the candle store
/// check it once, so the hot path does not).
pub fn run_backtest(
    candles: &Candles,
    strategy: &mut dyn Strategy,
    config: &BacktestConfig,
) -> Result<Report, EngineError> {
    run_backtest_observed(candles, strategy, config, &mut |_| {})
}

/// [`run_backtest`], calling `on_progress(bars_done)` after every strategy
/// call (so a queue worker can publish progress of a long run).
pub fn run_backtest_observed(
    candles: &Candles,
    strategy: &mut dyn Strategy,
    config: &BacktestConfig,
    on_progress: &mut dyn FnMut(usize),
) -> Result<Report, EngineError> {
    config.check()?;
    if candles.is_empty() {
        return Err(EngineError::NoCandles);
    }
    if config.market == Market::LinearPerpetual {
        return crate::perp::run_perpetual(candles, strategy, config, on_progress);
    }
    let n = candles.len();
    let mut broker = Broker::new(
        config.initial_capital,
        Costs {
            commission: config.commission,
            slippage_bps: config.slippage_bps,
            leverage: config.leverage,
        },
    );
    let mut marks = Marks::new(config, n);
    let mut actions: Vec<Action> = Vec::new();
    let mut plan = Plan::default();
    let mut bar_actions: Vec<Action> = Vec::new();
    let mut scan = MIN_SCAN;
    let mut i = 0;
    while i < n {
        broker.fill_bar(candles, i);
        let end = broker.next_trigger(candles, i + 1, n, scan);
        actions.clear();
        plan.clear();
        let consumed = strategy
            .on_bars(candles, i, end, &broker.view(), &mut actions, &mut plan)
            .map_err(EngineError::Strategy)?;
        if consumed == 0 || consumed > end - i {
            return Err(EngineError::Protocol(format!(
                "consumed {consumed} bars of a range of {}",
                end - i
            )));
        }
        let last = i + consumed - 1;
        walk_range(
            candles,
            &mut broker,
            &plan,
            i,
            last,
            &mut bar_actions,
            &mut marks,
        )?;
        // The strategy has seen every fill up to `last`.
        broker.fills.clear();
        broker
            .apply(&actions)
            .map_err(|message| EngineError::InvalidOrder {
                bar: last,
                ts: candles.ts[last],
                message,
            })?;
        scan = (consumed * 2).clamp(MIN_SCAN, MAX_SCAN);
        i += consumed;
        on_progress(i);
    }
    let open_position =
        broker
            .open_position()
            .map(|(side, qty, entry_price, entry_ts, _, fees)| {
                OpenPosition::marked(side, qty, entry_ts, entry_price, fees, candles.close[n - 1])
            });
    Ok(build_report(
        candles,
        config,
        &broker.trades,
        broker.fees_paid,
        open_position,
        marks,
        strategy.fuel_used(),
    ))
}

/// What the report needs of each bar's equity, folded as the bars are
/// marked: the curve itself is never stored (8 MB per million bars, and
/// one more pass over it per statistic).
pub(crate) struct Marks {
    /// Equity of the last marked bar; the initial capital before bar 0.
    pub(crate) last_equity: f64,
    moments: MomentsAccumulator,
    drawdown: DrawdownTracker,
    bars_in_market: usize,
    /// Bars kept for the report's equity curve, in order.
    samples: Vec<usize>,
    next_sample: usize,
    curve: Vec<EquityPoint>,
}

impl Marks {
    pub(crate) fn new(config: &BacktestConfig, bars: usize) -> Self {
        let samples = stats::downsample_indices(bars, config.equity_curve_points);
        Self {
            last_equity: config.initial_capital,
            moments: MomentsAccumulator::default(),
            drawdown: DrawdownTracker::new(config.initial_capital),
            bars_in_market: 0,
            curve: Vec::with_capacity(samples.len()),
            samples,
            next_sample: 0,
        }
    }

    /// The next bar kept for the equity curve (`usize::MAX` past the last).
    fn sample_bar(&self) -> usize {
        self.samples
            .get(self.next_sample)
            .copied()
            .unwrap_or(usize::MAX)
    }

    /// Keeps the sampled bar's point for the curve; returns the next one.
    fn keep_sample(&mut self, ts: i64, equity: f64) -> usize {
        self.curve.push(EquityPoint { ts, equity });
        self.next_sample += 1;
        self.sample_bar()
    }

    /// Marks bars `from..=to`, over which the account is constant.
    ///
    /// In chunks, two passes each: equities and returns first, which carry
    /// nothing from bar to bar, so the divisions overlap; then the sums and
    /// the drawdown, which must go bar by bar in order (about 1 ms less per
    /// million bars than one pass, measured). Kept out of line: inlined
    /// into the bar loop its sums were spilled to the stack, each add
    /// waiting on a store and a reload.
    #[inline(never)]
    fn mark(&mut self, candles: &Candles, from: usize, to: usize, cash: f64, position: f64) {
        self.mark_by::<false>(candles, from, to, cash, position)
    }

    /// [`Marks::mark`] for a perpetual account: each equity is
    /// `max(0, cash + position * close)` (isolated margin: the account
    /// never owes more than it holds).
    #[inline(never)]
    pub(crate) fn mark_floored(
        &mut self,
        candles: &Candles,
        from: usize,
        to: usize,
        cash: f64,
        position: f64,
    ) {
        self.mark_by::<true>(candles, from, to, cash, position)
    }

    #[inline(always)]
    fn mark_by<const FLOOR: bool>(
        &mut self,
        candles: &Candles,
        from: usize,
        to: usize,
        cash: f64,
        position: f64,
    ) {
        if position == 0.0 && self.mark_flat(candles, from, to, cash) {
            return;
        }
        const CHUNK: usize = 64;
        let mut equity = [0.0_f64; CHUNK];
        let mut returns = [0.0_f64; CHUNK];
        // Locals, so the compiler keeps the accumulators in registers
        // rather than storing them back through `self` every bar.
        let mut moments = self.moments;
        let mut drawdown = self.drawdown;
        let mut last_equity = self.last_equity;
        let mut sample_bar = self.sample_bar();
        let mut bar = from;
        for closes in candles.close[from..=to].chunks(CHUNK) {
            let n = closes.len();
            let (equity, returns) = (&mut equity[..n], &mut returns[..n]);
            for (e, &close) in equity.iter_mut().zip(closes) {
                *e = cash + position * close;
                if FLOOR {
                    *e = e.max(0.0);
                }
            }
            returns[0] = stats::simple_return(last_equity, equity[0]);
            for k in 1..n {
                returns[k] = stats::simple_return(equity[k - 1], equity[k]);
            }
            self.fold(
                (&mut moments, &mut drawdown, &mut sample_bar),
                bar,
                equity,
                returns,
                &candles.ts,
            );
            last_equity = equity[n - 1];
            bar += n;
        }
        self.moments = moments;
        self.drawdown = drawdown;
        self.last_equity = last_equity;
        if position != 0.0 {
            self.bars_in_market += to + 1 - from;
        }
    }

    /// Folds one chunk of equities (and their returns) starting at `bar`
    /// into the statistics, keeping the curve's samples.
    #[inline(always)]
    fn fold(
        &mut self,
        (moments, drawdown, sample_bar): (
            &mut MomentsAccumulator,
            &mut DrawdownTracker,
            &mut usize,
        ),
        bar: usize,
        equity: &[f64],
        returns: &[f64],
        ts: &[i64],
    ) {
        for (k, (&e, &r)) in equity.iter().zip(returns.iter()).enumerate() {
            moments.push(r);
            drawdown.push(bar + k, e, ts);
            if bar + k == *sample_bar {
                *sample_bar = self.keep_sample(ts[bar + k], e);
            }
        }
    }

    /// Marks steps `from..from + equities.len()` of a portfolio run, whose
    /// equity is not one series' `cash + position x close`: the caller
    /// computes each step's. `in_market`: some position was open.
    pub(crate) fn mark_equities(
        &mut self,
        ts: &[i64],
        from: usize,
        equities: &[f64],
        in_market: bool,
    ) {
        const CHUNK: usize = 64;
        let mut returns = [0.0_f64; CHUNK];
        let mut moments = self.moments;
        let mut drawdown = self.drawdown;
        let mut sample_bar = self.sample_bar();
        let mut last_equity = self.last_equity;
        let mut bar = from;
        for equity in equities.chunks(CHUNK) {
            let returns = &mut returns[..equity.len()];
            returns[0] = stats::simple_return(last_equity, equity[0]);
            for k in 1..equity.len() {
                returns[k] = stats::simple_return(equity[k - 1], equity[k]);
            }
            self.fold(
                (&mut moments, &mut drawdown, &mut sample_bar),
                bar,
                equity,
                returns,
                ts,
            );
            last_equity = equity[equity.len() - 1];
            bar += equity.len();
        }
        self.moments = moments;
        self.drawdown = drawdown;
        self.last_equity = last_equity;
        if in_market {
            self.bars_in_market += equities.len();
        }
    }

    /// Marks a flat stretch in closed form when every bar's equity is
    /// exactly `cash` (`cash + 0 * close` with `cash` finite and not zero
    /// and every close finite); returns false, having done nothing,
    /// otherwise. Bit-identical to marking bar by bar: the first return
    /// is from the last equity, the rest are `+0.0` (`simple_return` of
    /// two equal equities). A long-only strategy is flat about half the
    /// time; this halves the cost of marking those bars.
    fn mark_flat(&mut self, candles: &Candles, from: usize, to: usize, cash: f64) -> bool {
        let constant = cash.is_finite()
            && cash != 0.0
            && candles.close[from..=to].iter().all(|c| c.is_finite());
        if !constant {
            return false;
        }
        self.moments
            .push(stats::simple_return(self.last_equity, cash));
        self.moments.push_zeros(to - from);
        self.drawdown.push_constant(from, to, cash, &candles.ts);
        let mut sample_bar = self.sample_bar();
        while sample_bar <= to {
            sample_bar = self.keep_sample(candles.ts[sample_bar], cash);
        }
        self.last_equity = cash;
        true
    }
}

/// Marks equity for bars `start..=last` of one call. With a plan, also
/// applies the actions the strategy took (and filled itself) on earlier
/// bars, fills them, and checks every account it assumed against the
/// broker's, bit for bit. Between fills the account is constant, so each
/// stretch is marked in one go.
#[allow(clippy::too_many_arguments)]
fn walk_range(
    candles: &Candles,
    broker: &mut Broker,
    plan: &Plan,
    start: usize,
    last: usize,
    bar_actions: &mut Vec<Action>,
    marks: &mut Marks,
) -> Result<(), EngineError> {
    let protocol = |message: String| EngineError::Protocol(message);
    let mut next_action = 0;
    let mut next_assumed = 0;
    let mut k = start;
    loop {
        // Bars k..=acted have the same account: mark them in one go.
        let acted = plan.actions.get(next_action).map_or(last, |&(bar, _)| bar);
        if acted < k || acted > last {
            return Err(protocol(format!(
                "planned action on bar {acted} outside bars {k}..={last}, or out of order"
            )));
        }
        marks.mark(candles, k, acted, broker.cash, broker.position);
        if next_action == plan.actions.len() {
            break;
        }
        if acted == last {
            return Err(protocol(format!(
                "planned actions on bar {acted}, the last of the call, must come back as actions"
            )));
        }
        bar_actions.clear();
        while let Some(&(bar, action)) = plan.actions.get(next_action) {
            if bar != acted {
                break;
            }
            bar_actions.push(action);
            next_action += 1;
        }
        broker
            .apply(bar_actions)
            .map_err(|message| EngineError::InvalidOrder {
                bar: acted,
                ts: candles.ts[acted],
                message,
            })?;
        k = acted + 1;
        broker.fill_bar(candles, k);
        let Some(assumed) = plan.assumed.get(next_assumed).filter(|a| a.bar == k) else {
            return Err(protocol(format!(
                "no assumed account for the fills of bar {k}"
            )));
        };
        next_assumed += 1;
        let same = assumed.cash.to_bits() == broker.cash.to_bits()
            && assumed.position.to_bits() == broker.position.to_bits()
            && assumed.entry_price.to_bits() == broker.entry_price.to_bits();
        if !same {
            return Err(protocol(format!(
                "the strategy assumed cash {}, position {}, entry {} after the fills of bar {k}; the engine has {}, {}, {}",
                assumed.cash, assumed.position, assumed.entry_price,
                broker.cash, broker.position, broker.entry_price
            )));
        }
    }
    if next_assumed != plan.assumed.len() {
        return Err(protocol(format!(
            "assumed accounts outside bars {start}..={last}, or out of order"
        )));
    }
    Ok(())
}

pub(crate) fn build_report(
    candles: &Candles,
    config: &BacktestConfig,
    trades: &[Trade],
    fees_paid: f64,
    open_position: Option<OpenPosition>,
    marks: Marks,
    fuel_used: u64,
) -> Report {
    let n = candles.len();
    let span = Span {
        ts: &candles.ts,
        timeframe_secs: config
            .timeframe_secs
            .or_else(|| candles.timeframe_secs())
            .unwrap_or(60),
        buy_and_hold_return_pct: BuyAndHoldReturn::compute(candles.open[0], candles.close[n - 1]),
    };
    build_report_over(
        &span,
        config,
        trades,
        fees_paid,
        open_position,
        marks,
        fuel_used,
    )
}

/// What a report needs of the bars beyond the marks: their times (a
/// series' bars, or a portfolio's timeline), bar length, and the
/// buy-and-hold figure.
pub(crate) struct Span<'a> {
    pub ts: &'a [i64],
    pub timeframe_secs: i64,
    pub buy_and_hold_return_pct: f64,
}

pub(crate) fn build_report_over(
    span: &Span<'_>,
    config: &BacktestConfig,
    trades: &[Trade],
    fees_paid: f64,
    open_position: Option<OpenPosition>,
    marks: Marks,
    fuel_used: u64,
) -> Report {
    let n = span.ts.len();
    let timeframe_secs = span.timeframe_secs;
    let bar_seconds = timeframe_secs as f64;
    let final_equity = marks.last_equity;
    let periods_per_year = stats::periods_per_year(bar_seconds);
    let years = n as f64 * bar_seconds / stats::SECONDS_PER_YEAR;
    let cagr = Cagr::compute(config.initial_capital, final_equity, years);
    let drawdown = marks.drawdown.finish(n, span.ts);
    let pnls: Vec<f64> = trades.iter().map(|t| t.pnl).collect();
    let trade_returns: Vec<f64> = trades.iter().map(|t| t.return_pct).collect();
    let durations: Vec<i64> = trades.iter().map(|t| t.duration_secs).collect();
    let summary = TradeReturns::compute(&trade_returns);
    let moments = marks.moments.finish();
    Report {
        strategy: None,
        bars: n,
        start_ts: span.ts[0],
        end_ts: span.ts[n - 1],
        timeframe_secs,
        initial_capital: config.initial_capital,
        commission: config.commission,
        slippage_bps: config.slippage_bps,
        leverage: config.leverage,
        final_equity,
        total_return_pct: TotalReturn::compute(config.initial_capital, final_equity),
        buy_and_hold_return_pct: span.buy_and_hold_return_pct,
        cagr_pct: cagr,
        max_drawdown_pct: drawdown.max_drawdown_pct,
        max_drawdown_duration_bars: drawdown.max_drawdown_duration_bars,
        max_drawdown_duration_secs: drawdown.max_drawdown_duration_secs,
        avg_drawdown_pct: drawdown.avg_drawdown_pct,
        avg_drawdown_duration_secs: drawdown.avg_drawdown_duration_secs,
        sharpe: SharpeRatio::from_moments(&moments, periods_per_year),
        sortino: SortinoRatio::from_moments(&moments, periods_per_year),
        calmar: CalmarRatio::compute(cagr, drawdown.max_drawdown_pct),
        annual_volatility_pct: stats::AnnualVolatility::from_moments(&moments, periods_per_year),
        num_trades: trades.len(),
        win_rate_pct: WinRate::compute(&pnls),
        profit_factor: ProfitFactor::compute(&pnls),
        avg_trade_pct: summary.map(|s| s.avg_pct),
        best_trade_pct: summary.map(|s| s.best_pct),
        worst_trade_pct: summary.map(|s| s.worst_pct),
        avg_trade_duration_secs: AverageTradeDuration::compute(&durations),
        sqn: stats::Sqn::compute(&pnls),
        expectancy: stats::Expectancy::compute(&pnls),
        kelly: stats::Kelly::compute(&trade_returns),
        return_skewness: stats::ReturnSkewness::from_moments(&moments),
        return_kurtosis: stats::ReturnKurtosis::from_moments(&moments),
        exposure_pct: Exposure::compute(marks.bars_in_market, n),
        fees_paid,
        fuel_used,
        market: None,
        liquidations: None,
        funding_paid: None,
        fees_maker: None,
        fees_taker: None,
        rejected_orders: None,
        funding_source: None,
        symbols: None,
        open_position,
        trades: trades.to_vec(),
        equity_curve: marks.curve,
    }
}

#[cfg(test)]
mod marks_tests {
    use super::*;

    /// Folding bars as they are marked, in stretches of any length, gives
    /// bit for bit what the batch statistics give over the stored curve.
    #[test]
    fn marks_equal_the_statistics_of_the_stored_curve() {
        // Phase 2 starts flat, so the flat stretches take the collapsed
        // path of `push_zeros` (first return zero); the others do not.
        for phase in 0..3 {
            marks_match_the_stored_curve(phase);
        }
    }

    fn marks_match_the_stored_curve(phase: usize) {
        let candles = crate::candles::synth(5_000, 7, 60, 1_704_067_200, 100.0);
        let config = BacktestConfig {
            initial_capital: 1_000.0,
            equity_curve_points: 97,
            ..BacktestConfig::default()
        };
        let mut marks = Marks::new(&config, candles.len());
        let mut curve = Vec::new();
        let (mut from, mut stretch) = (0, 1);
        while from < candles.len() {
            let to = (from + stretch - 1).min(candles.len() - 1);
            // Flat, long and short stretches, some with more cash than equity.
            let position = [0.0, 3.0, -2.5][(stretch + phase) % 3];
            let cash = 1_000.0 - position * candles.close[from];
            marks.mark(&candles, from, to, cash, position);
            curve.extend(candles.close[from..=to].iter().map(|c| cash + position * c));
            from = to + 1;
            stretch = stretch * 7 % 61 + 1;
        }
        let expected_drawdown =
            stats::MaxDrawdown::compute(config.initial_capital, &curve, &candles.ts);
        let expected_moments =
            stats::ReturnMoments::from_returns(&stats::bar_returns(config.initial_capital, &curve));
        assert_eq!(
            marks.drawdown.finish(curve.len(), &candles.ts),
            expected_drawdown
        );
        assert_eq!(marks.moments.finish(), expected_moments);
        assert_eq!(
            marks.last_equity.to_bits(),
            curve[curve.len() - 1].to_bits()
        );
        let expected_curve: Vec<(i64, f64)> =
            stats::downsample_indices(curve.len(), config.equity_curve_points)
                .into_iter()
                .map(|k| (candles.ts[k], curve[k]))
                .collect();
        let got: Vec<(i64, f64)> = marks.curve.iter().map(|p| (p.ts, p.equity)).collect();
        assert_eq!(got, expected_curve);
        assert!(
            expected_drawdown.max_drawdown_pct > 0.0,
            "the curve must have drawdowns"
        );
    }
}
