//! The bar loop of a perpetual run: the spot loop's shape (fills, one
//! strategy call per range over which nothing can change, equity marks)
//! over the perpetual account. Kept apart so spot's loop has no branch
//! per bar.

use std::collections::BTreeMap;

use super::broker::{PerpBroker, ScanIndex};
use super::funding::FundingClock;
use super::mark::{AlignedMarks, MarkView};
use crate::backtest::{build_report, BacktestConfig, EngineError, Marks, MAX_SCAN, MIN_SCAN};
use crate::candles::Candles;
use crate::report::{OpenPosition, Report};
use crate::strategy::{Action, Market, Plan, Strategy};

/// Marks may miss bars inside the run (those bars use trade prices), but
/// not its ends: a series that starts late or stops early is the wrong
/// file or a fetch that has not finished, and would silently turn into
/// trade-price liquidations.
pub fn check_mark_covers(candles: &Candles, mark: &Candles) -> Result<(), EngineError> {
    let (Some(&first), Some(&last)) = (candles.ts.first(), candles.ts.last()) else {
        return Ok(());
    };
    let fmt = crate::time::format_rfc3339_secs;
    match (mark.ts.first(), mark.ts.last()) {
        (Some(&a), Some(&b)) if a <= first && b >= last => Ok(()),
        (Some(&a), Some(&b)) => Err(EngineError::InvalidConfig {
            field: "mark",
            message: format!(
                "the mark series covers {} to {}, not the run's {} to {}",
                fmt(a),
                fmt(b),
                fmt(first),
                fmt(last)
            ),
        }),
        _ => Err(EngineError::InvalidConfig {
            field: "mark",
            message: "the mark series is empty".into(),
        }),
    }
}

pub(crate) fn run_perpetual(
    candles: &Candles,
    strategy: &mut dyn Strategy,
    config: &BacktestConfig,
    on_progress: &mut dyn FnMut(usize),
) -> Result<Report, EngineError> {
    let n = candles.len();
    if let Some(mark) = config.perp.mark.as_deref() {
        check_mark_covers(candles, mark)?;
    }
    let instrument = config.perp.instrument();
    let aligned = config
        .perp
        .mark
        .as_deref()
        .map(|mark| AlignedMarks::new(candles, mark));
    let mark = aligned
        .as_ref()
        .map_or_else(|| MarkView::of(candles), AlignedMarks::view);
    let extremes = ScanIndex::new(candles, &mark);
    let mut broker = PerpBroker::new(
        config.initial_capital,
        instrument,
        config.leverage,
        config.slippage_bps,
        FundingClock::new(&config.perp.funding, candles.ts[0]),
    );
    let mut marks = Marks::new(config, n);
    let mut actions: Vec<Action> = Vec::new();
    let mut plan = Plan::default();
    let mut scan = MIN_SCAN;
    let mut i = 0;
    while i < n {
        broker.fill_bar(candles, &mark, i);
        let end = broker.next_trigger(candles, &mark, &extremes, i + 1, n, scan);
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
        if !plan.actions.is_empty() || !plan.assumed.is_empty() {
            // Guest-side fills mirror the spot broker only.
            return Err(EngineError::Protocol(
                "a plan of guest-side fills under linear_perpetual (they are spot-only: \
                 return each bar's actions to the engine)"
                    .into(),
            ));
        }
        let last = i + consumed - 1;
        // Isolated margin: with trade prices as marks, liquidation comes
        // before any close beyond LP, so the floor below never has to act.
        debug_assert!(
            aligned.is_some()
                || candles.close[i..=last].iter().all(|&c| {
                    let e = broker.mark_cash() + broker.position * c;
                    e >= -1e-9 * config.initial_capital.max(e.abs())
                }),
            "equity below zero on bars {i}..={last}"
        );
        marks.mark_floored(candles, i, last, broker.mark_cash(), broker.position);
        broker.fills.clear();
        broker
            .apply(&actions, last)
            .map_err(|message| EngineError::InvalidOrder {
                bar: last,
                ts: candles.ts[last],
                message,
            })?;
        scan = (consumed * 2).clamp(MIN_SCAN, MAX_SCAN);
        i += consumed;
        on_progress(i);
    }
    let open_position = broker
        .open_position()
        .map(|(side, qty, entry_price, entry_ts, fees)| {
            OpenPosition::marked(side, qty, entry_ts, entry_price, fees, candles.close[n - 1])
        });
    let mut report = build_report(
        candles,
        config,
        &broker.trades,
        broker.fees_paid,
        open_position,
        marks,
        strategy.fuel_used(),
    );
    report.commission = broker_taker(config);
    report.market = Some(Market::LinearPerpetual);
    report.liquidations = Some(broker.liquidations);
    report.funding_paid = Some(broker.funding_paid);
    report.fees_maker = Some(broker.fees_maker);
    report.fees_taker = Some(broker.fees_taker);
    report.rejected_orders = Some(
        std::mem::take(&mut broker.rejected)
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
    );
    report.funding_source = Some(config.perp.funding.source());
    Ok(report)
}

/// The report's `commission` of a perpetual run: the taker fee.
fn broker_taker(config: &BacktestConfig) -> f64 {
    config
        .perp
        .instrument
        .as_deref()
        .map_or(super::Instrument::bybit_default().taker_fee, |i| {
            i.taker_fee
        })
}
