//! Engine unit tests with hand-computed expectations (docs/conventions/engine.md).
//!
//! Every test drives [`run_backtest`] with a [`Scripted`] strategy (bar
//! index -> actions taken at that bar's close) over a handful of bars whose
//! prices are small round numbers, and checks the report against arithmetic
//! written out in the comments. Unless stated otherwise: capital 10,000,
//! commission 0.001 (C), no slippage, leverage 1, bars 60 s apart from
//! ts 1,000.
//!
//! Values the engine computes with the same float expression, in the same
//! order, as the test are compared with `assert_eq!`; the others (mostly
//! values that go through the cash account) within a relative 1e-12.

use super::*;
use crate::candles::Candles;
use crate::scripted::Scripted;

/// Commission used by most tests.
const C: f64 = 0.001;
const CAPITAL: f64 = 10_000.0;
const T0: i64 = 1_000;
const STEP: i64 = 60;

/// Open time of bar `i`.
fn ts(i: usize) -> i64 {
    T0 + STEP * i as i64
}

/// Candles from (open, high, low, close) tuples, volume 1.
fn candles(bars: &[(f64, f64, f64, f64)]) -> Candles {
    let mut c = Candles::new();
    for (i, &(o, h, l, cl)) in bars.iter().enumerate() {
        c.push(ts(i), o, h, l, cl, 1.0);
    }
    c.validate().unwrap();
    c
}

/// A bar that never moves from `p`.
fn flat(p: f64) -> (f64, f64, f64, f64) {
    (p, p, p, p)
}

fn config(commission: f64, leverage: f64) -> BacktestConfig {
    BacktestConfig {
        initial_capital: CAPITAL,
        commission,
        slippage_bps: 0.0,
        leverage,
        timeframe_secs: None,
        equity_curve_points: 1_000,
        ..BacktestConfig::default()
    }
}

fn order(side: Side, kind: OrderKind, stop_loss: Option<f64>, take_profit: Option<f64>) -> Action {
    Action::Submit(Order {
        side,
        quantity: Quantity::Equity(1.0),
        kind,
        stop_loss,
        take_profit,
    })
}

/// All-in market order.
fn market(side: Side) -> Action {
    order(side, OrderKind::Market, None, None)
}

fn run(
    bars: &[(f64, f64, f64, f64)],
    script: impl IntoIterator<Item = (usize, Vec<Action>)>,
    config: &BacktestConfig,
) -> (Report, Scripted) {
    let candles = candles(bars);
    let mut strategy = Scripted::new(script);
    let report = run_backtest(&candles, &mut strategy, config).unwrap();
    (report, strategy)
}

/// `|actual - expected| <= 1e-12 * |expected|`, for a non-zero `expected`.
#[track_caller]
fn assert_close(actual: f64, expected: f64) {
    assert!(
        expected != 0.0 && expected.is_finite(),
        "bad expected {expected}"
    );
    assert!(
        (actual - expected).abs() <= 1e-12 * expected.abs(),
        "expected {expected:e} (relative 1e-12), got {actual:e}"
    );
}

/// All-in quantity at `price` for `equity`, as docs/conventions/engine.md ("Sizing") writes it:
/// `qty = equity * leverage / (price * (1 + commission))`.
fn all_in_qty(equity: f64, leverage: f64, price: f64, commission: f64) -> f64 {
    equity * leverage / (price * (1.0 + commission))
}

#[test]
fn market_order_fills_at_next_bar_open() {
    // Buy at bar 0's close (100); bar 1 opens at 102: the fill is 102 at
    // ts[1], not 100. Close at bar 2's close (106): exit at bar 3's open 108.
    let bars = [
        flat(100.0),
        (102.0, 105.0, 101.0, 104.0),
        (104.0, 107.0, 103.0, 106.0),
        (108.0, 109.0, 107.0, 108.0),
    ];
    let (report, strategy) = run(
        &bars,
        [
            (0, vec![market(Side::Buy)]),
            (2, vec![Action::ClosePosition]),
        ],
        &config(C, 1.0),
    );
    assert_eq!(report.num_trades, 1);
    let t = &report.trades[0];
    assert_eq!(t.side, TradeSide::Long);
    assert_eq!(t.entry_ts, ts(1));
    assert_eq!(t.entry_price, 102.0);
    assert_eq!(t.entry_bar, 1);
    assert_eq!(t.exit_ts, ts(3));
    assert_eq!(t.exit_price, 108.0);
    assert_eq!(t.exit_bar, 3);
    assert_eq!(t.duration_secs, 2 * STEP);
    // The strategy saw the entry fill at 102 on bar 1, nothing on bar 0.
    assert!(strategy.seen_at(0).fills.is_empty());
    assert_eq!(strategy.seen_at(0).position, 0.0);
    let fills = &strategy.seen_at(1).fills;
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].price, 102.0);
    assert_eq!(fills[0].ts, ts(1));
    assert!(report.open_position.is_none());
}

#[test]
fn all_in_sizing_includes_commission() {
    // qty = 10000 * 1 / (100 * (1 + 0.001)) = 10000 / 100.1 = 99.9000999000999...
    // Notional 9990.00999..., commission 9.99000999..., together 10000.
    let (report, _) = run(
        &[flat(100.0), flat(100.0), flat(100.0)],
        [(0, vec![market(Side::Buy)])],
        &config(C, 1.0),
    );
    let pos = report.open_position.as_ref().unwrap();
    assert_eq!(pos.qty, 10_000.0 * 1.0 * 1.0 / (100.0 * (1.0 + 0.001)));
    assert_close(pos.qty, 99.900_099_900_099_9);
    // Position plus its commission uses the whole equity.
    assert_close(pos.qty * 100.0 * (1.0 + C), CAPITAL);
    assert_eq!(pos.entry_price, 100.0);
    assert_eq!(pos.fees, pos.qty * 100.0 * C);
}

#[test]
fn commission_is_charged_on_both_sides() {
    // Long from 100 (bar 1 open) to 110 (bar 2 open), C = 0.001.
    // qty        = 10000 / 100.1             = 99.9000999000999
    // entry fee  = 99.9000999 * 100 * 0.001  =  9.990009990009991
    // exit fee   = 99.9000999 * 110 * 0.001  = 10.989010989010989
    // pnl        = 10 * 99.9000999 - 20.979020979... = 978.021978021978
    // final      = 10000 + 978.021978021978  = 10978.021978021978
    let bars = [flat(100.0), (100.0, 110.0, 100.0, 110.0), flat(110.0)];
    let (report, _) = run(
        &bars,
        [
            (0, vec![market(Side::Buy)]),
            (1, vec![Action::ClosePosition]),
        ],
        &config(C, 1.0),
    );
    let qty = all_in_qty(CAPITAL, 1.0, 100.0, C);
    let entry_fee = qty * 100.0 * C;
    let exit_fee = qty * 110.0 * C;
    let fees = entry_fee + exit_fee;
    let pnl = (110.0 - 100.0) * qty - fees;
    assert_eq!(report.num_trades, 1);
    let t = &report.trades[0];
    assert_eq!(t.qty, qty);
    assert_eq!(t.entry_price, 100.0);
    assert_eq!(t.exit_price, 110.0);
    assert_eq!(t.fees, fees);
    assert_eq!(t.pnl, pnl);
    assert_close(t.pnl, 978.021_978_021_978);
    // return_pct = pnl / entry notional * 100 = 978.02.../9990.00999... * 100
    assert_close(t.return_pct, pnl / (100.0 * qty) * 100.0);
    assert_eq!(report.fees_paid, fees);
    assert_close(report.fees_paid, 20.979_020_979_020_98);
    assert_close(report.final_equity, CAPITAL + pnl);
    assert_close(report.final_equity, 10_978.021_978_021_978);
    assert!(report.open_position.is_none());
}

#[test]
fn short_profits_when_price_falls() {
    // Sell all-in at 100 (bar 1 open), cover at 90 (bar 2 open).
    // qty  = 10000 / 100.1 = 99.9000999000999
    // fees = 99.9000999 * (100 + 90) * 0.001 = 18.981018981...
    // pnl  = (100 - 90) * 99.9000999 - 18.981018981 = 980.01998001998
    let bars = [flat(100.0), (100.0, 100.0, 90.0, 90.0), flat(90.0)];
    let (report, _) = run(
        &bars,
        [
            (0, vec![market(Side::Sell)]),
            (1, vec![Action::ClosePosition]),
        ],
        &config(C, 1.0),
    );
    let qty = all_in_qty(CAPITAL, 1.0, 100.0, C);
    let fees = qty * 100.0 * C + qty * 90.0 * C;
    let pnl = (100.0 - 90.0) * qty - fees;
    assert_eq!(report.num_trades, 1);
    let t = &report.trades[0];
    assert_eq!(t.side, TradeSide::Short);
    assert_eq!(t.qty, qty);
    assert_eq!(t.entry_price, 100.0);
    assert_eq!(t.exit_price, 90.0);
    assert_eq!(t.fees, fees);
    assert_eq!(t.pnl, pnl);
    assert_close(t.pnl, 980.019_980_019_98);
    assert_eq!(report.fees_paid, fees);
    assert_close(report.final_equity, CAPITAL + pnl);
    assert_close(report.final_equity, 10_980.019_980_019_98);
}

#[test]
fn reversal_closes_then_opens_from_equity_after_close() {
    // Long from 100 (bar 1 open). At bar 2's close an all-in SELL: at bar 3's
    // open (110) the long closes (paying its commission), then a short opens
    // at the same 110 sized from the equity after the close.
    // q1            = 10000 / 100.1                        = 99.9000999000999
    // long pnl      = 10 * q1 - q1 * (100 + 110) * 0.001   = 978.021978021978
    // equity after  = 10978.021978021978
    // q2            = 10978.021978... / (110 * 1.001)      = 99.70049930089891
    // Bar 4 closes at 100: final = cash + (-q2) * 100, where
    // cash = equity_after + q2 * 110 - q2 * 110 * 0.001.
    let bars = [
        flat(100.0),
        (100.0, 105.0, 100.0, 105.0),
        (105.0, 110.0, 105.0, 110.0),
        flat(110.0),
        (110.0, 110.0, 100.0, 100.0),
    ];
    let (report, strategy) = run(
        &bars,
        [(0, vec![market(Side::Buy)]), (2, vec![market(Side::Sell)])],
        &config(C, 1.0),
    );
    let q1 = all_in_qty(CAPITAL, 1.0, 100.0, C);
    let long_pnl = (110.0 - 100.0) * q1 - (q1 * 100.0 * C + q1 * 110.0 * C);
    let equity_after = CAPITAL + long_pnl;
    let q2 = all_in_qty(equity_after, 1.0, 110.0, C);
    assert_close(q2, 99.700_499_300_898_91);

    assert_eq!(report.num_trades, 1);
    let t = &report.trades[0];
    assert_eq!(t.side, TradeSide::Long);
    assert_eq!(t.qty, q1);
    assert_eq!(t.exit_price, 110.0);
    assert_eq!(t.exit_ts, ts(3));
    assert_eq!(t.pnl, long_pnl);

    let pos = report.open_position.as_ref().unwrap();
    assert_eq!(pos.side, TradeSide::Short);
    assert_close(pos.qty, q2);
    assert_eq!(pos.entry_price, 110.0);
    assert_eq!(pos.entry_ts, ts(3));
    assert_eq!(pos.mark_price, 100.0);

    // Both fills of the reversal happened at bar 3's open, close first.
    let fills = &strategy.seen_at(3).fills;
    assert_eq!(fills.len(), 2);
    assert_eq!(fills[0].side, Side::Sell);
    assert_eq!(fills[0].qty, q1);
    assert_eq!(fills[0].price, 110.0);
    assert_eq!(fills[1].side, Side::Sell);
    assert_close(fills[1].qty, q2);
    assert_eq!(fills[1].price, 110.0);
    assert!(strategy.seen_at(3).position < 0.0);

    let cash = equity_after + q2 * 110.0 - q2 * 110.0 * C;
    assert_close(report.final_equity, cash - q2 * 100.0);
    assert_close(
        report.fees_paid,
        q1 * 100.0 * C + q1 * 110.0 * C + q2 * 110.0 * C,
    );
}

#[test]
fn gap_through_stop_loss_exits_at_open() {
    // Long at 100 with stop-loss 95; bar 2 gaps down: open 90, high 92,
    // low 88. The exit is the open, 90, not 95.
    // pnl = (90 - 100) * q - q * (100 + 90) * 0.001 = -1017.982017982018
    let bars = [
        flat(100.0),
        (100.0, 101.0, 99.0, 100.0),
        (90.0, 92.0, 88.0, 91.0),
        flat(91.0),
    ];
    let (report, strategy) = run(
        &bars,
        [(
            0,
            vec![order(Side::Buy, OrderKind::Market, Some(95.0), None)],
        )],
        &config(C, 1.0),
    );
    let qty = all_in_qty(CAPITAL, 1.0, 100.0, C);
    assert_eq!(report.num_trades, 1);
    let t = &report.trades[0];
    assert_eq!(t.exit_price, 90.0);
    assert_eq!(t.exit_ts, ts(2));
    assert_eq!(
        t.pnl,
        (90.0 - 100.0) * qty - (qty * 100.0 * C + qty * 90.0 * C)
    );
    assert_close(t.pnl, -1_017.982_017_982_018);
    let fills = &strategy.seen_at(2).fills;
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].reason, FillReason::StopLoss);
    assert_eq!(fills[0].price, 90.0);
    assert!(report.open_position.is_none());
}

#[test]
fn stop_loss_wins_when_bar_touches_both_exits() {
    // Long at 100, SL 95, TP 110; bar 2: open 100, high 112, low 94 touches
    // both: the stop-loss is taken, at 95.
    // pnl = (95 - 100) * q - q * (100 + 95) * 0.001 = -518.981018981019
    let bars = [
        flat(100.0),
        (100.0, 101.0, 99.0, 100.0),
        (100.0, 112.0, 94.0, 105.0),
        flat(105.0),
    ];
    let (report, strategy) = run(
        &bars,
        [(
            0,
            vec![order(Side::Buy, OrderKind::Market, Some(95.0), Some(110.0))],
        )],
        &config(C, 1.0),
    );
    let qty = all_in_qty(CAPITAL, 1.0, 100.0, C);
    assert_eq!(report.num_trades, 1);
    let t = &report.trades[0];
    assert_eq!(t.exit_price, 95.0);
    assert_eq!(t.exit_ts, ts(2));
    assert_eq!(
        t.pnl,
        (95.0 - 100.0) * qty - (qty * 100.0 * C + qty * 95.0 * C)
    );
    assert_close(t.pnl, -518.981_018_981_019);
    assert_eq!(strategy.seen_at(2).fills[0].reason, FillReason::StopLoss);
}

#[test]
fn take_profit_exits_at_its_price() {
    // Long at 100, SL 95, TP 110; bar 2: open 100, high 112, low 99: only
    // the TP is reached, exit at 110 (not the high 112).
    // pnl = 10 * q - q * (100 + 110) * 0.001 = 978.021978021978
    let bars = [
        flat(100.0),
        (100.0, 101.0, 99.0, 100.0),
        (100.0, 112.0, 99.0, 105.0),
        flat(105.0),
    ];
    let (report, strategy) = run(
        &bars,
        [(
            0,
            vec![order(Side::Buy, OrderKind::Market, Some(95.0), Some(110.0))],
        )],
        &config(C, 1.0),
    );
    let qty = all_in_qty(CAPITAL, 1.0, 100.0, C);
    assert_eq!(report.num_trades, 1);
    let t = &report.trades[0];
    assert_eq!(t.exit_price, 110.0);
    assert_eq!(t.exit_ts, ts(2));
    assert_eq!(
        t.pnl,
        (110.0 - 100.0) * qty - (qty * 100.0 * C + qty * 110.0 * C)
    );
    assert_close(t.pnl, 978.021_978_021_978);
    assert_eq!(strategy.seen_at(2).fills[0].reason, FillReason::TakeProfit);
    assert_close(report.final_equity, CAPITAL + t.pnl);
}

#[test]
fn leverage_two_doubles_size_and_pnl() {
    // Leverage 2: qty = 10000 * 2 / (100 * 1.001) = 199.8001998001998.
    // 100 -> 110: pnl = 10 * q - q * 210 * 0.001 = 1956.043956043956,
    // exactly twice the leverage-1 pnl 978.021978021978.
    let bars = [flat(100.0), (100.0, 110.0, 100.0, 110.0), flat(110.0)];
    let script = || {
        [
            (0, vec![market(Side::Buy)]),
            (1, vec![Action::ClosePosition]),
        ]
    };
    let (r2, _) = run(&bars, script(), &config(C, 2.0));
    let (r1, _) = run(&bars, script(), &config(C, 1.0));
    let q2 = all_in_qty(CAPITAL, 2.0, 100.0, C);
    assert_eq!(q2, 10_000.0 * 2.0 * 1.0 / (100.0 * (1.0 + 0.001)));
    assert_close(q2, 199.800_199_800_199_8);
    let t = &r2.trades[0];
    assert_eq!(t.qty, q2);
    let pnl2 = (110.0 - 100.0) * q2 - (q2 * 100.0 * C + q2 * 110.0 * C);
    assert_eq!(t.pnl, pnl2);
    assert_close(t.pnl, 1_956.043_956_043_956);
    assert_close(t.pnl, 2.0 * r1.trades[0].pnl);
    assert_close(r2.final_equity, CAPITAL + pnl2);
    // Position notional plus commission used twice the equity.
    assert_close(q2 * 100.0 * (1.0 + C), 2.0 * CAPITAL);
}

#[test]
fn open_position_at_end_is_not_a_trade() {
    // Long from 100 (bar 1 open), never closed; last close 120.
    // q = 99.9000999000999, entry fee = 9.990009990009991
    // cash  = 10000 - (q * 100 + q * 100 * 0.001) = ~0
    // final = cash + q * 120 = 11988.011988011988 (no exit commission)
    // unrealized = (120 - 100) * q - 9.99000999 = 1988.011988011988
    let bars = [
        flat(100.0),
        (100.0, 110.0, 100.0, 110.0),
        (110.0, 120.0, 110.0, 120.0),
    ];
    let (report, _) = run(&bars, [(0, vec![market(Side::Buy)])], &config(C, 1.0));
    let qty = all_in_qty(CAPITAL, 1.0, 100.0, C);
    let entry_fee = qty * 100.0 * C;
    assert_eq!(report.num_trades, 0);
    assert!(report.trades.is_empty());
    assert_eq!(report.win_rate_pct, None);
    let pos = report.open_position.as_ref().unwrap();
    assert_eq!(pos.side, TradeSide::Long);
    assert_eq!(pos.qty, qty);
    assert_eq!(pos.entry_price, 100.0);
    assert_eq!(pos.entry_ts, ts(1));
    assert_eq!(pos.mark_price, 120.0);
    assert_eq!(pos.fees, entry_fee);
    assert_eq!(pos.unrealized_pnl, (120.0 - 100.0) * qty * 1.0 - entry_fee);
    assert_close(pos.unrealized_pnl, 1_988.011_988_011_988);
    let cash = CAPITAL - (qty * 100.0 + entry_fee);
    assert_eq!(report.final_equity, cash + qty * 120.0);
    assert_close(report.final_equity, 11_988.011_988_011_988);
    // Only the entry commission was paid.
    assert_eq!(report.fees_paid, entry_fee);
}

#[test]
fn limit_buy_fills_at_limit_or_better_open() {
    // Buy limit 95 placed at bar 0. Bar 1's low 96 does not reach it; bar 2's
    // low 94 does: fill at 95 on bar 2. qty = 10000 / (95 * 1.001)
    // = 105.15799989484202.
    let bars = [
        flat(100.0),
        (100.0, 101.0, 96.0, 98.0),
        (98.0, 99.0, 94.0, 97.0),
        flat(97.0),
    ];
    let limit = order(Side::Buy, OrderKind::Limit(95.0), None, None);
    let (report, strategy) = run(&bars, [(0, vec![limit])], &config(C, 1.0));
    let pos = report.open_position.as_ref().unwrap();
    assert_eq!(pos.entry_price, 95.0);
    assert_eq!(pos.entry_ts, ts(2));
    assert_eq!(pos.qty, all_in_qty(CAPITAL, 1.0, 95.0, C));
    assert_close(pos.qty, 105.157_999_894_842_02);
    assert_eq!(strategy.seen_at(1).position, 0.0);
    let fills = &strategy.seen_at(2).fills;
    assert_eq!(fills.len(), 1);
    assert_eq!(fills[0].reason, FillReason::Limit);
    assert_eq!(fills[0].price, 95.0);

    // Bar 1 opens at 93, already below the limit: fill at the open, 93.
    // qty = 10000 / (93 * 1.001) = 107.41946225817195.
    let bars = [flat(100.0), (93.0, 94.0, 92.0, 93.0), flat(93.0)];
    let (report, strategy) = run(&bars, [(0, vec![limit])], &config(C, 1.0));
    let pos = report.open_position.as_ref().unwrap();
    assert_eq!(pos.entry_price, 93.0);
    assert_eq!(pos.entry_ts, ts(1));
    assert_eq!(pos.qty, all_in_qty(CAPITAL, 1.0, 93.0, C));
    assert_close(pos.qty, 107.419_462_258_171_95);
    assert_eq!(strategy.seen_at(1).fills[0].reason, FillReason::Limit);
}

#[test]
fn stop_buy_fills_at_stop_or_gap_open() {
    // Buy stop 105 placed at bar 0. Bar 1's high 104 does not reach it;
    // bar 2's high 106 does: fill at 105. qty = 10000 / (105 * 1.001)
    // = 95.14295228580944.
    let bars = [
        flat(100.0),
        (100.0, 104.0, 99.0, 103.0),
        (103.0, 106.0, 102.0, 105.0),
        flat(105.0),
    ];
    let stop = order(Side::Buy, OrderKind::Stop(105.0), None, None);
    let (report, strategy) = run(&bars, [(0, vec![stop])], &config(C, 1.0));
    let pos = report.open_position.as_ref().unwrap();
    assert_eq!(pos.entry_price, 105.0);
    assert_eq!(pos.entry_ts, ts(2));
    assert_eq!(pos.qty, all_in_qty(CAPITAL, 1.0, 105.0, C));
    assert_close(pos.qty, 95.142_952_285_809_44);
    assert_eq!(strategy.seen_at(1).position, 0.0);
    assert_eq!(strategy.seen_at(2).fills[0].reason, FillReason::Stop);

    // Bar 1 gaps above the stop, opening at 107: fill at the open, 107.
    // qty = 10000 / (107 * 1.001) = 93.36457934588778.
    let bars = [flat(100.0), (107.0, 108.0, 106.0, 107.0), flat(107.0)];
    let (report, _) = run(&bars, [(0, vec![stop])], &config(C, 1.0));
    let pos = report.open_position.as_ref().unwrap();
    assert_eq!(pos.entry_price, 107.0);
    assert_eq!(pos.entry_ts, ts(1));
    assert_close(pos.qty, 93.364_579_345_887_78);
}

#[test]
fn strategy_sees_its_fills_on_the_next_bar() {
    // Market buy at bar 0's close; on bar 1 the strategy's view shows the
    // long and the one Market fill (qty 99.9000999, price 100, fee 9.99001);
    // the fill is gone from the view on later calls. The no-op action at
    // bar 2 forces a new call starting at bar 3.
    let bars = [
        flat(100.0),
        flat(100.0),
        flat(100.0),
        flat(100.0),
        flat(100.0),
    ];
    let (_, strategy) = run(
        &bars,
        [
            (0, vec![market(Side::Buy)]),
            (2, vec![Action::CancelOrders]),
        ],
        &config(C, 1.0),
    );
    let qty = all_in_qty(CAPITAL, 1.0, 100.0, C);
    let first = strategy.seen_at(0);
    assert_eq!(first.position, 0.0);
    assert_eq!(first.cash, CAPITAL);
    assert!(first.fills.is_empty());

    let next = strategy.seen_at(1);
    assert!(next.position > 0.0);
    assert_eq!(next.position, qty);
    assert_eq!(next.entry_price, 100.0);
    assert_eq!(next.cash, CAPITAL - (qty * 100.0 + qty * 100.0 * C));
    assert_eq!(next.fills.len(), 1);
    let fill = next.fills[0];
    assert_eq!(fill.reason, FillReason::Market);
    assert_eq!(fill.side, Side::Buy);
    assert_eq!(fill.ts, ts(1));
    assert_eq!(fill.qty, qty);
    assert_eq!(fill.price, 100.0);
    assert_eq!(fill.fee, qty * 100.0 * C);

    let later = strategy.seen_at(3);
    assert_eq!(later.position, qty);
    assert!(later.fills.is_empty());
    // One call per scripted action plus the tail: 0..1, 1..3 (stops at the
    // action on bar 2), 3..5.
    let starts: Vec<usize> = strategy.seen.iter().map(|s| s.start).collect();
    assert_eq!(starts, vec![0, 1, 3]);
    assert_eq!(strategy.seen_at(3).end, bars.len());
}

#[test]
fn slippage_moves_market_fills_against_the_trader() {
    // 10 bps: a buy at open 100 fills at 100 * (1 + 10/10000) = 100.1;
    // the closing sell at open 110 fills at 110 * (1 - 0.001) = 109.89.
    // qty = 10000 / (100.1 * 1.001) = 99.80029960049943.
    let bars = [flat(100.0), (100.0, 110.0, 100.0, 110.0), flat(110.0)];
    let mut cfg = config(C, 1.0);
    cfg.slippage_bps = 10.0;
    let (report, _) = run(
        &bars,
        [
            (0, vec![market(Side::Buy)]),
            (1, vec![Action::ClosePosition]),
        ],
        &cfg,
    );
    let t = &report.trades[0];
    assert_eq!(t.entry_price, 100.0 * (1.0 + 1.0 * 10.0 / 10_000.0));
    assert_close(t.entry_price, 100.1);
    assert_close(t.exit_price, 109.89);
    let qty = all_in_qty(CAPITAL, 1.0, t.entry_price, C);
    assert_eq!(t.qty, qty);
    assert_close(t.qty, 99.800_299_600_499_43);
    assert_close(
        t.pnl,
        (109.89 - 100.1) * qty - (qty * 100.1 * C + qty * 109.89 * C),
    );
}

#[test]
fn invalid_config_names_the_field() {
    let candles = candles(&[flat(100.0), flat(100.0)]);
    let cases = [
        (
            BacktestConfig {
                initial_capital: -1.0,
                ..config(C, 1.0)
            },
            "initial_capital",
        ),
        (config(0.5, 1.0), "commission"),
        (config(C, 0.0), "leverage"),
    ];
    for (cfg, expected) in cases {
        let mut strategy = Scripted::default();
        let err = run_backtest(&candles, &mut strategy, &cfg).unwrap_err();
        match &err {
            EngineError::InvalidConfig { field, .. } => assert_eq!(*field, expected),
            other => panic!("expected InvalidConfig for {expected}, got {other:?}"),
        }
        assert!(err.to_string().contains(expected), "{err}");
        // Nothing ran.
        assert!(strategy.seen.is_empty());
    }
}

#[test]
fn equity_is_marked_to_close_every_bar() {
    // Buy at bar 0 (fills at bar 1's open 100), close at bar 3's close
    // (fills at bar 4's open 103). q = 99.9000999000999.
    // cash while long = 10000 - (q * 100 + q * 100 * 0.001)
    // bar 0: 10000                      (flat)
    // bar 1: cash + q * 102
    // bar 2: cash + q * 98
    // bar 3: cash + q * 104
    // bar 4: 10000 + 3 * q - q * (100 + 103) * 0.001   (flat after exit)
    // bar 5: same as bar 4
    let bars = [
        flat(100.0),
        (100.0, 103.0, 99.0, 102.0),
        (102.0, 102.0, 97.0, 98.0),
        (98.0, 105.0, 98.0, 104.0),
        (103.0, 106.0, 101.0, 105.0),
        (105.0, 108.0, 104.0, 107.0),
    ];
    let (report, _) = run(
        &bars,
        [
            (0, vec![market(Side::Buy)]),
            (3, vec![Action::ClosePosition]),
        ],
        &config(C, 1.0),
    );
    let q = all_in_qty(CAPITAL, 1.0, 100.0, C);
    let cash = CAPITAL - (q * 100.0 + q * 100.0 * C);
    let flat_after = CAPITAL + (103.0 - 100.0) * q - (q * 100.0 * C + q * 103.0 * C);
    let expected = [
        CAPITAL,
        cash + q * 102.0,
        cash + q * 98.0,
        cash + q * 104.0,
        flat_after,
        flat_after,
    ];
    assert_eq!(report.equity_curve.len(), bars.len());
    for (k, (point, want)) in report.equity_curve.iter().zip(expected).enumerate() {
        assert_eq!(point.ts, ts(k));
        assert_close(point.equity, want);
    }
    // Marked with the engine's own expression while long.
    assert_eq!(report.equity_curve[2].equity, cash + q * 98.0);
    assert_close(report.final_equity, flat_after);
    assert_close(report.trades[0].pnl, flat_after - CAPITAL);
}

#[test]
fn exposure_counts_bars_held_at_close() {
    // 10 bars; buy at bar 0 (in from bar 1's open), close at bar 3's close
    // (out at bar 4's open): the position is held at the close of bars
    // 1, 2, 3 -> 3 / 10 = 30%.
    let bars = [flat(100.0); 10];
    let (report, _) = run(
        &bars,
        [
            (0, vec![market(Side::Buy)]),
            (3, vec![Action::ClosePosition]),
        ],
        &config(C, 1.0),
    );
    assert_eq!(report.bars, 10);
    assert_eq!(report.exposure_pct, 30.0);

    // Held to the end from bar 1: 9 / 10 = 90%.
    let (report, _) = run(&bars, [(0, vec![market(Side::Buy)])], &config(C, 1.0));
    assert_eq!(report.exposure_pct, 90.0);
}

// Beyond the list: the short side of the exits, a unit-sized partial
// reversal, and a resting order that fills past the engine's first scan
// window.

#[test]
fn short_stop_loss_wins_when_bar_touches_both_exits() {
    // Short at 100 with SL 105 and TP 90; bar 2: open 100, high 106, low 89
    // touches both: the stop-loss is taken, at 105.
    // pnl = (100 - 105) * q - q * (100 + 105) * 0.001 = -519.98001998002
    let bars = [
        flat(100.0),
        (100.0, 101.0, 99.0, 100.0),
        (100.0, 106.0, 89.0, 95.0),
        flat(95.0),
    ];
    let (report, strategy) = run(
        &bars,
        [(
            0,
            vec![order(
                Side::Sell,
                OrderKind::Market,
                Some(105.0),
                Some(90.0),
            )],
        )],
        &config(C, 1.0),
    );
    let qty = all_in_qty(CAPITAL, 1.0, 100.0, C);
    assert_eq!(report.num_trades, 1);
    let t = &report.trades[0];
    assert_eq!(t.side, TradeSide::Short);
    assert_eq!(t.exit_price, 105.0);
    assert_eq!(t.exit_ts, ts(2));
    assert_close(
        t.pnl,
        (100.0 - 105.0) * qty - (qty * 100.0 * C + qty * 105.0 * C),
    );
    assert_close(t.pnl, -519.980_019_980_02);
    let fill = strategy.seen_at(2).fills[0];
    assert_eq!(fill.reason, FillReason::StopLoss);
    assert_eq!(fill.side, Side::Buy);
}

#[test]
fn units_order_larger_than_position_reverses_the_rest() {
    // Buy 10 units at 100 (bar 1 open); sell 15 units at bar 1's close,
    // filling at bar 2's open 110: 10 close the long, 5 open a short.
    // long pnl = (110 - 100) * 10 - (1000 * 0.001 + 1100 * 0.001) = 97.9
    // short entry fee = 5 * 110 * 0.001 = 0.55
    // final = 10000 + 97.9 - 0.55 + (110 - 110) * 5 = 10097.35
    let units = |side, qty| {
        Action::Submit(Order {
            side,
            quantity: Quantity::Units(qty),
            kind: OrderKind::Market,
            stop_loss: None,
            take_profit: None,
        })
    };
    let bars = [flat(100.0), flat(100.0), flat(110.0), flat(110.0)];
    let (report, _) = run(
        &bars,
        [
            (0, vec![units(Side::Buy, 10.0)]),
            (1, vec![units(Side::Sell, 15.0)]),
        ],
        &config(C, 1.0),
    );
    assert_eq!(report.num_trades, 1);
    let t = &report.trades[0];
    assert_eq!(t.side, TradeSide::Long);
    assert_eq!(t.qty, 10.0);
    assert_eq!(t.exit_price, 110.0);
    assert_close(t.pnl, 97.9);
    let pos = report.open_position.as_ref().unwrap();
    assert_eq!(pos.side, TradeSide::Short);
    assert_eq!(pos.qty, 5.0);
    assert_eq!(pos.entry_price, 110.0);
    assert_eq!(pos.entry_ts, ts(2));
    assert_close(pos.fees, 0.55);
    assert_close(report.final_equity, 10_097.35);
    assert_close(report.fees_paid, 1.0 + 1.1 + 0.55);
}

#[test]
fn resting_order_fills_far_beyond_the_first_scan_window() {
    // 300 flat bars at 100; only bar 150 dips to 94. A buy limit at 95
    // placed at bar 0 rests untouched until bar 150, fills there at 95 and
    // is held at the close of bars 150..=299: exposure 150 / 300 = 50%.
    let mut bars = vec![flat(100.0); 300];
    bars[150] = (100.0, 100.0, 94.0, 96.0);
    let limit = order(Side::Buy, OrderKind::Limit(95.0), None, None);
    let (report, strategy) = run(&bars, [(0, vec![limit])], &config(C, 1.0));
    let pos = report.open_position.as_ref().unwrap();
    assert_eq!(pos.entry_ts, ts(150));
    assert_eq!(pos.entry_price, 95.0);
    assert_eq!(pos.qty, all_in_qty(CAPITAL, 1.0, 95.0, C));
    assert_eq!(strategy.seen_at(150).fills.len(), 1);
    assert_eq!(report.exposure_pct, 50.0);
    // Flat at 10000 before the fill; cash + q * 100 after.
    let cash = CAPITAL - (pos.qty * 95.0 + pos.qty * 95.0 * C);
    assert_eq!(report.equity_curve[149].equity, CAPITAL);
    assert_close(report.equity_curve[150].equity, cash + pos.qty * 96.0);
    assert_close(report.final_equity, cash + pos.qty * 100.0);
}

#[test]
fn exits_set_with_a_market_entry_protect_the_new_position() {
    // A market buy and a stop-loss of 95 in the same step: the stop belongs
    // to the position the buy opens, so bar 2 (low 94) exits at 95.
    let bars = [
        flat(100.0),
        (100.0, 101.0, 99.0, 100.0),
        (100.0, 101.0, 94.0, 96.0),
        flat(96.0),
    ];
    let (report, _) = run(
        &bars,
        [(0, vec![market(Side::Buy), Action::SetStopLoss(Some(95.0))])],
        &config(C, 1.0),
    );
    assert_eq!(report.num_trades, 1);
    assert_eq!(report.trades[0].exit_price, 95.0);
    assert_eq!(report.trades[0].exit_reason, FillReason::StopLoss);
}

#[test]
fn a_stop_loss_set_while_flat_is_refused() {
    let bars = [flat(100.0), flat(100.0), flat(100.0)];
    let mut strategy = Scripted::new([(1, vec![Action::SetStopLoss(Some(95.0))])]);
    let err = run_backtest(&candles(&bars), &mut strategy, &config(C, 1.0)).unwrap_err();
    let EngineError::InvalidOrder { bar, message, .. } = err else {
        panic!("expected an invalid order, got {err}");
    };
    assert_eq!(bar, 1);
    assert!(message.contains("protects nothing"), "{message}");
}

/// Returns a fixed plan from its first call, then walks the rest.
struct Planner {
    plan: Plan,
    consumed: usize,
}

impl Strategy for Planner {
    fn on_bars(
        &mut self,
        _candles: &Candles,
        start: usize,
        end: usize,
        _portfolio: &PortfolioView<'_>,
        _actions: &mut Vec<Action>,
        plan: &mut Plan,
    ) -> Result<usize, StrategyError> {
        if start == 0 {
            *plan = self.plan.clone();
            return Ok(self.consumed);
        }
        Ok(end - start)
    }
}

fn planned_buy(cash: f64, position: f64, entry_price: f64) -> Planner {
    Planner {
        plan: Plan {
            actions: vec![(0, market(Side::Buy))],
            assumed: vec![Assumed {
                bar: 1,
                cash,
                position,
                entry_price,
            }],
        },
        consumed: 3,
    }
}

#[test]
fn a_plan_filled_by_the_strategy_equals_returning_at_the_action() {
    // Buy all in at bar 0's close, filled at bar 1's open (102): the
    // strategy reports the account it computed and walks on to bar 2.
    let bars = [flat(100.0), flat(102.0), flat(105.0), flat(104.0)];
    let qty = all_in_qty(CAPITAL, 1.0, 102.0, C);
    let cash = CAPITAL - (qty * 102.0 + qty * 102.0 * C);
    let mut planner = planned_buy(cash, qty, 102.0);
    let planned = run_backtest(&candles(&bars), &mut planner, &config(C, 1.0)).unwrap();
    let (scripted, _) = run(&bars, [(0, vec![market(Side::Buy)])], &config(C, 1.0));
    assert_eq!(planned, scripted);
}

#[test]
fn a_plan_whose_account_differs_by_one_bit_fails_the_run() {
    let bars = [flat(100.0), flat(102.0), flat(105.0), flat(104.0)];
    let qty = all_in_qty(CAPITAL, 1.0, 102.0, C);
    let cash = CAPITAL - (qty * 102.0 + qty * 102.0 * C);
    let off_by_one_bit = f64::from_bits(cash.to_bits() + 1);
    let mut planner = planned_buy(off_by_one_bit, qty, 102.0);
    let err = run_backtest(&candles(&bars), &mut planner, &config(C, 1.0)).unwrap_err();
    assert!(matches!(err, EngineError::Protocol(_)), "{err}");
    assert!(err.to_string().contains("assumed"), "{err}");
    // A planned action on the last bar of the call is refused too.
    let mut late = planned_buy(cash, qty, 102.0);
    late.plan.actions = vec![(2, market(Side::Buy))];
    late.plan.assumed.clear();
    assert!(matches!(
        run_backtest(&candles(&bars), &mut late, &config(C, 1.0)),
        Err(EngineError::Protocol(_))
    ));
}

#[test]
fn report_json_is_serde_json_of_the_report_and_fits_its_estimate() {
    // 300 bars of full-precision prices, a closed trade and an open
    // position: every part of the report's JSON, at its usual width.
    let bars: Vec<_> = (0..300)
        .map(|i| {
            let p = 42_000.0 + (i as f64 * 0.7).sin() * 500.0 + i as f64 / 3.0;
            (p, p + 17.25, p - 13.5, p + (i as f64).cos() * 9.0)
        })
        .collect();
    let (report, _) = run(
        &bars,
        [
            (0, vec![market(Side::Buy)]),
            (150, vec![market(Side::Sell)]),
        ],
        &config(C, 1.0),
    );
    assert_eq!(report.trades.len(), 1);
    assert!(report.open_position.is_some());
    let json = report.to_json().unwrap();
    assert_eq!(json, serde_json::to_string(&report).unwrap());
    assert!(
        json.len() <= report.json_size_estimate(),
        "{} bytes",
        json.len()
    );
    // The curve is written by hand: one point, none, extreme and
    // non-finite values (serde writes those as null) and negative times.
    let mut odd = report.clone();
    for curve in [
        vec![(0, 0.0)],
        vec![],
        vec![
            (-1, -0.0),
            (i64::MIN, f64::MIN_POSITIVE),
            (i64::MAX, f64::MAX),
            (7, f64::NAN),
            (8, f64::INFINITY),
            (9, 1e-300),
            (10, 123456789.125),
        ],
    ] {
        odd.equity_curve = curve
            .into_iter()
            .map(|(ts, equity)| EquityPoint { ts, equity })
            .collect();
        assert_eq!(odd.to_json().unwrap(), serde_json::to_string(&odd).unwrap());
    }
}

/// Curves a stored report must bring back to the byte: none, one point,
/// evenly spaced, uneven (downsampled), times at the ends of i64 and
/// values serde writes as null.
fn awkward_curves() -> Vec<Vec<(i64, f64)>> {
    vec![
        vec![],
        vec![(0, 0.0)],
        vec![(-7200, 1.5), (-3600, 2.25), (0, -0.0)],
        (0..100)
            .map(|i| {
                (
                    1_704_067_200 + 3600 * i,
                    10_000.0 + (i as f64).sin() * 321.123,
                )
            })
            .collect(),
        vec![(0, 1.0), (3600, 2.0), (10800, 3.0)],
        vec![(5, 1.0), (5, 2.0)],
        vec![(i64::MAX - 1, 1.0), (i64::MAX, 2.0), (i64::MAX, 3.0)],
        vec![(i64::MIN, f64::MIN_POSITIVE), (i64::MAX, f64::MAX)],
        vec![
            (7, f64::NAN),
            (8, f64::INFINITY),
            (9, 1e-300),
            (10, 123456789.125),
        ],
    ]
}

#[test]
fn compact_report_expands_to_the_reports_json() {
    let bars: Vec<_> = (0..120)
        .map(|i| {
            let p = 100.0 + (i as f64 * 0.3).sin() * 5.0;
            (p, p + 1.0, p - 1.0, p + 0.5)
        })
        .collect();
    let (mut report, _) = run(&bars, [(3, vec![market(Side::Buy)])], &config(C, 1.0));
    let full_curve = report.clone();
    let compact = full_curve.clone().into_compact_json().unwrap();
    let json = full_curve.to_json().unwrap();
    // Every point's keys and time (`{"ts":<ts>,"equity":}`) are gone from
    // an evenly spaced curve, for one `{"start":..,"step":..}`.
    let point_overhead = format!(r#"{{"ts":{},"equity":}}"#, ts(0)).len();
    let columns_overhead = format!(r#"{{"start":{},"step":{STEP},"equity":}}"#, ts(0)).len();
    assert_eq!(
        json.len() - compact.len(),
        point_overhead * report.equity_curve.len() - columns_overhead,
        "{compact}"
    );
    assert!(compact.contains(r#""equity_curve":{"start":"#), "{compact}");
    for curve in awkward_curves() {
        report.equity_curve = curve
            .into_iter()
            .map(|(ts, equity)| EquityPoint { ts, equity })
            .collect();
        let compact = report.clone().into_compact_json().unwrap();
        let expanded = expand_compact_json(&compact).unwrap();
        assert_eq!(expanded, report.to_json().unwrap(), "from {compact}");
        // Already a list of points (stored before): given back as it is.
        let json = report.to_json().unwrap();
        assert!(matches!(
            expand_compact_json(&json).unwrap(),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}

#[test]
fn a_damaged_compact_report_is_refused_with_the_reason() {
    let head = r#"{"bars":2,"equity_curve":"#;
    for (tail, why) in [
        (r#"{"start":0,"step":1,"equity":[1.0,2.0]"#, "last field"),
        (r#"{"ts":[0],"equity":[1.0,2.0]}}"#, "1 times for 2 values"),
        (r#"{"start":0,"equity":[1.0]}}"#, "`start` and `step`"),
        (
            r#"{"ts":[0],"start":0,"step":1,"equity":[1.0]}}"#,
            "`start` and `step`",
        ),
        (r#"{"start":0,"step":1,"equity":["1"]}}"#, "not a number"),
        (
            r#"{"start":9223372036854775807,"step":1,"equity":[1,2]}}"#,
            "overflows",
        ),
        (r#"{"ts":[0],"equity":[1],"extra":1}}"#, "unknown field"),
    ] {
        let err = expand_compact_json(&format!("{head}{tail}")).unwrap_err();
        assert!(err.to_string().contains(why), "{tail}: {err}");
    }
}
