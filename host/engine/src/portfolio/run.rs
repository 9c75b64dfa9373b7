//! The step loop of a portfolio run: the single-symbol loop's shape (fills,
//! one strategy call per range over which nothing can change, equity
//! marks) over several symbols' brokers sharing one account.

use std::collections::BTreeMap;

use super::book::{Book, PerpBook, SpotBook};
use super::strategy::{AccountView, PortfolioStrategy, PositionView, SymbolAction, SymbolFill};
use super::universe::Universe;
use crate::backtest::{
    build_report_over, BacktestConfig, EngineError, Marks, Span, MAX_SCAN, MIN_SCAN,
};
use crate::broker::{Costs, Others};
use crate::perp::{check_mark_covers, FundingSource, PerpConfig};
use crate::report::{Report, SymbolSummary, Trade};
use crate::stats::{BuyAndHoldReturn, Exposure, WinRate};
use crate::strategy::{Action, Market, OrderKind};

/// Runs `strategy` over every step of `universe` with one account.
/// `perps` holds each symbol's instrument, funding and marks under
/// `linear_perpetual`, in the universe's order (empty: `config.perp` for
/// every symbol); spot ignores it.
pub fn run_portfolio(
    universe: &Universe,
    strategy: &mut dyn PortfolioStrategy,
    config: &BacktestConfig,
    perps: &[PerpConfig],
    on_progress: &mut dyn FnMut(usize),
) -> Result<Report, EngineError> {
    config.check()?;
    if universe.steps() == 0 {
        return Err(EngineError::NoCandles);
    }
    match config.market {
        Market::Spot => {
            let costs = Costs {
                commission: config.commission,
                slippage_bps: config.slippage_bps,
                leverage: config.leverage,
            };
            let books: Vec<SpotBook> = universe
                .symbols
                .iter()
                .map(|_| SpotBook::new(costs))
                .collect();
            let run = drive(universe, strategy, config, books, on_progress)?;
            Ok(report(universe, config, run, strategy.fuel_used()).0)
        }
        Market::LinearPerpetual => {
            if !perps.is_empty() && perps.len() != universe.symbols.len() {
                return Err(EngineError::InvalidConfig {
                    field: "symbols",
                    message: format!(
                        "{} perpetual settings for {} symbols",
                        perps.len(),
                        universe.symbols.len()
                    ),
                });
            }
            let mut books = Vec::with_capacity(universe.symbols.len());
            for (k, series) in universe.symbols.iter().enumerate() {
                let perp = perps.get(k).unwrap_or(&config.perp);
                let named = |e: EngineError| match e {
                    EngineError::InvalidConfig { field, message } => EngineError::InvalidConfig {
                        field,
                        message: format!("{}: {message}", series.name),
                    },
                    other => other,
                };
                perp.check(config.leverage).map_err(named)?;
                if let Some(mark) = perp.mark.as_deref() {
                    check_mark_covers(&series.candles, mark).map_err(named)?;
                }
                books.push(PerpBook::new(
                    &series.candles,
                    perp,
                    config.leverage,
                    config.slippage_bps,
                ));
            }
            let run = drive(universe, strategy, config, books, on_progress)?;
            let (mut report, books) = report(universe, config, run, strategy.fuel_used());
            let brokers = || books.iter().map(|b| &b.broker);
            report.market = Some(Market::LinearPerpetual);
            report.commission = perps.first().unwrap_or(&config.perp).instrument().taker_fee;
            report.liquidations = Some(brokers().map(|b| b.liquidations).sum());
            report.funding_paid = Some(brokers().map(|b| b.funding_paid).sum());
            report.fees_maker = Some(brokers().map(|b| b.fees_maker).sum());
            report.fees_taker = Some(brokers().map(|b| b.fees_taker).sum());
            let mut rejected = BTreeMap::new();
            for b in brokers() {
                for (reason, count) in &b.rejected {
                    *rejected.entry(reason.clone()).or_insert(0) += count;
                }
            }
            report.rejected_orders = Some(rejected);
            // The most informative source any symbol used.
            let sources: Vec<FundingSource> = (0..universe.symbols.len())
                .map(|k| perps.get(k).unwrap_or(&config.perp).funding.source())
                .collect();
            report.funding_source = [FundingSource::History, FundingSource::Constant]
                .into_iter()
                .find(|s| sources.contains(s))
                .or(Some(FundingSource::None));
            if let Some(symbols) = report.symbols.as_mut() {
                for (summary, b) in symbols.iter_mut().zip(brokers()) {
                    summary.liquidations = Some(b.liquidations);
                    summary.funding_paid = Some(b.funding_paid);
                }
            }
            Ok(report)
        }
    }
}

/// What the loop leaves for the report.
struct Run<B> {
    books: Vec<B>,
    marks: Marks,
    /// Per symbol: steps with a position open.
    steps_in_market: Vec<usize>,
}

fn drive<B: Book>(
    universe: &Universe,
    strategy: &mut dyn PortfolioStrategy,
    config: &BacktestConfig,
    mut books: Vec<B>,
    on_progress: &mut dyn FnMut(usize),
) -> Result<Run<B>, EngineError> {
    let n = universe.steps();
    let symbols = &universe.symbols;
    let k = symbols.len();
    let mut cash = config.initial_capital;
    // Per symbol: its first bar on or after the current step.
    let mut cursor = vec![0_usize; k];
    // Per symbol: when its first pending market order was placed, so that
    // symbols fill in the order the strategy asked (a rotation sells
    // before it buys).
    let mut first_order = vec![u64::MAX; k];
    let mut order_seq = 0_u64;
    let mut filling: Vec<usize> = Vec::with_capacity(k);
    let mut fills: Vec<SymbolFill> = Vec::new();
    let mut positions = vec![PositionView::default(); k];
    let mut actions: Vec<SymbolAction> = Vec::new();
    let mut held: Vec<usize> = Vec::with_capacity(k);
    let mut equities: Vec<f64> = Vec::new();
    let mut steps_in_market = vec![0_usize; k];
    let mut marks = Marks::new(config, n);
    let mut scan = MIN_SCAN;
    let mut i = 0;
    while i < n {
        filling.clear();
        for (s, series) in symbols.iter().enumerate() {
            let steps = &series.step_of_bar;
            while cursor[s] < steps.len() && (steps[cursor[s]] as usize) < i {
                cursor[s] += 1;
            }
            if steps.get(cursor[s]) == Some(&(i as u32)) {
                filling.push(s);
            }
        }
        filling.sort_by_key(|&s| (first_order[s], s));
        fills.clear();
        for &s in &filling {
            let others = others_of(&books, universe, s, i);
            let book = &mut books[s];
            book.lend(cash, others);
            book.fill(&symbols[s].candles, cursor[s]);
            cash = book.cash();
            book.drain_fills(s, &mut fills);
            first_order[s] = u64::MAX;
        }
        let mut end = n;
        for (s, series) in symbols.iter().enumerate() {
            let from = cursor[s] + usize::from(filling.contains(&s));
            if from < series.candles.len() {
                let trigger = books[s].next_trigger(&series.candles, from, scan);
                if let Some(&step) = series.step_of_bar.get(trigger) {
                    end = end.min(step as usize);
                }
            }
        }
        held.clear();
        for (s, book) in books.iter().enumerate() {
            positions[s] = book.view();
            if book.qty() != 0.0 {
                held.push(s);
            }
        }
        let equity = cash
            + held
                .iter()
                .map(|&s| books[s].value_at(mark_before(universe, s, i)))
                .sum::<f64>();
        let view = AccountView {
            cash,
            equity,
            positions: &positions,
            fills: &fills,
            commission: config.commission,
            leverage: config.leverage,
            slippage_bps: config.slippage_bps,
            market: config.market,
        };
        actions.clear();
        let consumed = strategy
            .on_steps(universe, i, end, &view, &mut actions)
            .map_err(EngineError::Strategy)?;
        if consumed == 0 || consumed > end - i {
            return Err(EngineError::Protocol(format!(
                "consumed {consumed} steps of a range of {}",
                end - i
            )));
        }
        let last = i + consumed - 1;
        equities.clear();
        equities.extend((i..=last).map(|t| {
            cash + held
                .iter()
                .map(|&s| books[s].value_at(symbols[s].last_close[t]))
                .sum::<f64>()
        }));
        marks.mark_equities(&universe.ts, i, &equities, !held.is_empty());
        for &s in &held {
            steps_in_market[s] += consumed;
        }
        for &SymbolAction { symbol, action } in &actions {
            let invalid = |message: String| EngineError::InvalidOrder {
                bar: last,
                ts: universe.ts[last],
                message,
            };
            let Some(series) = symbols.get(symbol) else {
                return Err(invalid(format!(
                    "symbol index {symbol}, but the run has {k} symbols"
                )));
            };
            let fills_at_open = matches!(
                action,
                Action::ClosePosition
                    | Action::Submit(crate::Order {
                        kind: OrderKind::Market,
                        ..
                    })
            );
            if fills_at_open && first_order[symbol] == u64::MAX {
                first_order[symbol] = order_seq;
                order_seq += 1;
            }
            // The symbol's last bar at or before this step.
            let bar = series
                .step_of_bar
                .partition_point(|&step| step as usize <= last)
                .saturating_sub(1);
            books[symbol]
                .apply(action, bar)
                .map_err(|message| invalid(format!("{}: {message}", series.name)))?;
        }
        scan = (consumed * 2).clamp(MIN_SCAN, MAX_SCAN);
        i += consumed;
        on_progress(i);
    }
    Ok(Run {
        books,
        marks,
        steps_in_market,
    })
}

/// Symbol `s`'s last close before step `i` (its position is marked there
/// until its next bar).
fn mark_before(universe: &Universe, s: usize, i: usize) -> f64 {
    if i == 0 {
        f64::NAN
    } else {
        universe.symbols[s].last_close[i - 1]
    }
}

/// The other symbols' positions as symbol `s` fills at step `i`.
fn others_of<B: Book>(books: &[B], universe: &Universe, s: usize, i: usize) -> Others {
    let mut others = Others::default();
    for (k, book) in books.iter().enumerate() {
        let qty = book.qty();
        if k != s && qty != 0.0 {
            let close = mark_before(universe, k, i);
            others.value += book.value_at(close);
            others.notional += qty.abs() * close;
        }
    }
    others
}

/// The portfolio's report, and the books back for the market's own fields.
fn report<B: Book>(
    universe: &Universe,
    config: &BacktestConfig,
    run: Run<B>,
    fuel_used: u64,
) -> (Report, Vec<B>) {
    let n = universe.steps();
    let mut trades: Vec<(usize, Trade)> = Vec::new();
    let mut summaries = Vec::with_capacity(universe.symbols.len());
    let mut fees_paid = 0.0;
    let mut buy_and_hold = 0.0;
    for (s, (series, book)) in universe.symbols.iter().zip(&run.books).enumerate() {
        let candles = &series.candles;
        let last_close = candles.close[candles.len() - 1];
        let pnls: Vec<f64> = book.trades().iter().map(|t| t.pnl).collect();
        let open_position = book.open_position(last_close);
        let realized_pnl: f64 = pnls.iter().sum();
        let unrealized_pnl = open_position.as_ref().map_or(0.0, |p| p.unrealized_pnl);
        let symbol_buy_and_hold = BuyAndHoldReturn::compute(candles.open[0], last_close);
        buy_and_hold += symbol_buy_and_hold;
        fees_paid += book.fees_paid();
        trades.extend(book.trades().iter().map(|t| {
            (
                s,
                Trade {
                    symbol: Some(series.name.clone()),
                    ..t.clone()
                },
            )
        }));
        summaries.push(SymbolSummary {
            symbol: series.name.clone(),
            bars: candles.len(),
            num_trades: pnls.len(),
            win_rate_pct: WinRate::compute(&pnls),
            realized_pnl,
            unrealized_pnl,
            contribution_pct: (realized_pnl + unrealized_pnl) / config.initial_capital * 100.0,
            fees_paid: book.fees_paid(),
            exposure_pct: Exposure::compute(run.steps_in_market[s], n),
            buy_and_hold_return_pct: symbol_buy_and_hold,
            liquidations: None,
            funding_paid: None,
            open_position,
        });
    }
    // By exit time, then the universe's order: the same run, the same bytes.
    trades.sort_by_key(|(s, t)| (t.exit_ts, *s));
    let trades: Vec<Trade> = trades.into_iter().map(|(_, t)| t).collect();
    let span = Span {
        ts: &universe.ts,
        timeframe_secs: config
            .timeframe_secs
            .or(universe.timeframe_secs)
            .unwrap_or(60),
        buy_and_hold_return_pct: buy_and_hold / universe.symbols.len() as f64,
    };
    let mut report = build_report_over(
        &span, config, &trades, fees_paid, None, run.marks, fuel_used,
    );
    report.symbols = Some(summaries);
    (report, run.books)
}
