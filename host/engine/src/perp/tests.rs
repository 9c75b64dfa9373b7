//! Perpetual-futures rules (docs/conventions/engine.md, "Perpetual
//! futures"), one test per rule, each with its numbers worked out by hand
//! in the comments. Unless stated otherwise: capital 10,000, leverage 10,
//! hourly bars from 2024-01-01 00:00 UTC (a funding time), the instrument
//! of [`inst`] (taker 0.0005, maker 0.0002, step 0.001, min 0.001, one
//! tier mmr 0.005 deduction 0), no funding, trade prices as marks.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::candles::Candles;
use crate::rng::SplitMix64;
use crate::scripted::Scripted;
use crate::{
    run_backtest, Action, BacktestConfig, EngineError, ExitReason, Market, Order, OrderKind, Plan,
    PortfolioView, Quantity, Report, Side, Strategy, StrategyError,
};

const CAPITAL: f64 = 10_000.0;
/// 2024-01-01 00:00 UTC: a multiple of 8 h.
const T0: i64 = 1_704_067_200;
const HOUR: i64 = 3_600;

fn ts(i: usize) -> i64 {
    T0 + HOUR * i as i64
}

fn candles(bars: &[(f64, f64, f64, f64)]) -> Candles {
    let mut c = Candles::new();
    for (i, &(o, h, l, cl)) in bars.iter().enumerate() {
        c.push(ts(i), o, h, l, cl, 1.0);
    }
    c.validate().unwrap();
    c
}

fn flat(p: f64) -> (f64, f64, f64, f64) {
    (p, p, p, p)
}

fn inst() -> Instrument {
    Instrument {
        symbol: None,
        tick_size: 0.1,
        qty_step: 0.001,
        min_qty: 0.001,
        max_leverage: 100.0,
        maker_fee: 0.0002,
        taker_fee: 0.0005,
        risk_tiers: vec![RiskTier {
            up_to_value: f64::INFINITY,
            mmr: 0.005,
            mm_deduction: 0.0,
        }],
    }
}

fn perp(instrument: Instrument, leverage: f64, funding: Funding) -> BacktestConfig {
    BacktestConfig {
        initial_capital: CAPITAL,
        leverage,
        market: Market::LinearPerpetual,
        perp: PerpConfig {
            instrument: Some(Arc::new(instrument)),
            funding,
            mark: None,
        },
        ..BacktestConfig::default()
    }
}

fn units(side: Side, qty: f64) -> Action {
    Action::Submit(Order {
        side,
        quantity: Quantity::Units(qty),
        kind: OrderKind::Market,
        stop_loss: None,
        take_profit: None,
    })
}

fn with_sl(action: Action, sl: f64) -> Action {
    match action {
        Action::Submit(order) => Action::Submit(Order {
            stop_loss: Some(sl),
            ..order
        }),
        other => other,
    }
}

fn limit(side: Side, qty: f64, price: f64) -> Action {
    Action::Submit(Order {
        side,
        quantity: Quantity::Units(qty),
        kind: OrderKind::Limit(price),
        stop_loss: None,
        take_profit: None,
    })
}

fn run(bars: &[(f64, f64, f64, f64)], config: &BacktestConfig, s: &mut Scripted) -> Report {
    run_backtest(&candles(bars), s, config).unwrap()
}

#[track_caller]
fn assert_close(actual: f64, expected: f64) {
    let tolerance = 1e-12 * expected.abs().max(1.0);
    assert!(
        (actual - expected).abs() <= tolerance,
        "expected {expected}, got {actual}"
    );
}

/// Two tiers: up to 1,000 USDT mmr 1 %, no deduction; above, mmr 2 %,
/// deduction 10 (so MM joins at 1,000: 1,000 x 0.02 - 10 = 10 = 1,000 x 0.01).
fn tiered() -> Instrument {
    Instrument {
        risk_tiers: vec![
            RiskTier {
                up_to_value: 1_000.0,
                mmr: 0.01,
                mm_deduction: 0.0,
            },
            RiskTier {
                up_to_value: f64::INFINITY,
                mmr: 0.02,
                mm_deduction: 10.0,
            },
        ],
        ..inst()
    }
}

#[test]
fn liquidation_price_long_and_short_with_a_deduction() {
    // 20 at 100, leverage 10: value 2,000 (tier 2: mmr 0.02, deduction 10).
    // IM = 20 x 100 / 10 = 200; MM = 2,000 x 0.02 - 10 = 30;
    // long LP = 100 - (200 - 30) / 20 = 91.5; short LP = 100 + 8.5 = 108.5.
    // Opening fee 2,000 x 0.0005 = 1: wallet 10,000 - 200 - 1 = 9,799.
    for (side, lp) in [(Side::Buy, 91.5), (Side::Sell, 108.5)] {
        let mut s = Scripted::new([(0, vec![units(side, 20.0)])]);
        let report = run(
            &[flat(100.0); 3],
            &perp(tiered(), 10.0, Funding::None),
            &mut s,
        );
        let seen = s.seen_at(1);
        assert_eq!(seen.market, Market::LinearPerpetual);
        assert_close(seen.liquidation_price.unwrap(), lp);
        assert_close(seen.cash, 9_799.0);
        assert_eq!(seen.position, 20.0 * side.sign());
        // Equity = wallet + PM + uPnL = 9,799 + 200 + 0.
        assert_close(report.final_equity, 9_999.0);
        assert_eq!(s.seen_at(0).liquidation_price, None, "flat: no LP");
    }
    assert_close(liquidation_price(&tiered(), true, 20.0, 100.0, 200.0), 91.5);
    assert_close(
        liquidation_price(&tiered(), false, 20.0, 100.0, 200.0),
        108.5,
    );
}

#[test]
fn the_tier_is_chosen_by_position_value() {
    let i = tiered();
    // 10 at 100 = 1,000: the first tier (bound inclusive): 1,000 x 0.01 = 10.
    assert_close(maintenance_margin(&i, 10.0, 100.0), 10.0);
    // 5 at 100 = 500: 5. 30 at 100 = 3,000: 3,000 x 0.02 - 10 = 50.
    assert_close(maintenance_margin(&i, 5.0, 100.0), 5.0);
    assert_close(maintenance_margin(&i, 30.0, 100.0), 50.0);
    // In a run: 5 at 100, IM 50, MM 5: LP = 100 - (50 - 5) / 5 = 91;
    // 30 at 100, IM 300, MM 50: LP = 100 - (300 - 50) / 30 = 91.666...
    for (qty, lp) in [(5.0, 91.0), (30.0, 100.0 - 250.0 / 30.0)] {
        let mut s = Scripted::new([(0, vec![units(Side::Buy, qty)])]);
        run(
            &[flat(100.0); 3],
            &perp(tiered(), 10.0, Funding::None),
            &mut s,
        );
        assert_close(s.seen_at(1).liquidation_price.unwrap(), lp);
    }
}

/// A 10x long of 10 at 100 with [`inst`]: IM 100, fee 0.5, wallet 9,899.5;
/// MM = 1,000 x 0.005 = 5; LP = 100 - (100 - 5) / 10 = 90.5; bankruptcy
/// 100 - 100 / 10 = 90.
const LONG_10: f64 = 10.0;

#[test]
fn a_gap_through_lp_liquidates_at_the_open_at_the_bankruptcy_price() {
    let mut s = Scripted::new([(0, vec![units(Side::Buy, LONG_10)])]);
    // Bar 2 opens at 85, beyond LP 90.5.
    let bars = [
        flat(100.0),
        flat(100.0),
        (85.0, 86.0, 84.0, 86.0),
        flat(86.0),
    ];
    let report = run(&bars, &perp(inst(), 10.0, Funding::None), &mut s);
    assert_close(s.seen_at(1).liquidation_price.unwrap(), 90.5);
    assert_eq!(report.liquidations, Some(1));
    let t = &report.trades[0];
    assert_eq!(t.exit_reason, ExitReason::Liquidation);
    assert_eq!(t.exit_bar, 2);
    assert_close(t.exit_price, 90.0);
    assert_close(t.liquidation_price.unwrap(), 90.5);
    // The whole margin (100) and the entry fee (0.5); no closing fee.
    assert_close(t.pnl, -100.5);
    assert_close(t.fees, 0.5);
    assert_close(report.fees_taker.unwrap(), 0.5);
    // Wallet 9,899.5 stays: equity 9,899.5 from bar 2 on.
    assert_close(report.final_equity, 9_899.5);
    // The strategy sees the position gone from bar 2 on.
    assert_eq!(s.seen_at(2).position, 0.0);
    assert_eq!(s.seen_at(2).liquidation_price, None);
}

#[test]
fn a_stop_loss_above_lp_wins() {
    // SL 95 lies before LP 90.5 on the way down: it fills at 95.
    // pnl = (95 - 100) x 10 - 0.5 - 10 x 95 x 0.0005 (0.475) = -50.975;
    // wallet = 9,899.5 + 100 (PM) - 50 - 0.475 = 9,949.025.
    let mut s = Scripted::new([(0, vec![with_sl(units(Side::Buy, LONG_10), 95.0)])]);
    let bars = [
        flat(100.0),
        flat(100.0),
        (99.0, 99.0, 80.0, 85.0),
        flat(85.0),
    ];
    let report = run(&bars, &perp(inst(), 10.0, Funding::None), &mut s);
    let t = &report.trades[0];
    assert_eq!(t.exit_reason, ExitReason::StopLoss);
    assert_close(t.exit_price, 95.0);
    assert_close(t.pnl, -50.975);
    assert_close(report.final_equity, 9_949.025);
    assert_eq!(report.liquidations, Some(0));
}

#[test]
fn a_stop_loss_below_lp_loses_to_liquidation() {
    // SL 88 lies past LP 90.5: the low 80 reaches LP first.
    let mut s = Scripted::new([(0, vec![with_sl(units(Side::Buy, LONG_10), 88.0)])]);
    let bars = [
        flat(100.0),
        flat(100.0),
        (99.0, 99.0, 80.0, 85.0),
        flat(85.0),
    ];
    let report = run(&bars, &perp(inst(), 10.0, Funding::None), &mut s);
    let t = &report.trades[0];
    assert_eq!(t.exit_reason, ExitReason::Liquidation);
    assert_close(t.exit_price, 90.0);
    assert_close(t.pnl, -100.5);
    assert_close(report.final_equity, 9_899.5);
    assert_eq!(report.liquidations, Some(1));
}

#[test]
fn a_short_is_liquidated_when_the_high_reaches_lp() {
    // Short 10 at 100: LP = 100 + (100 - 5) / 10 = 109.5; bankruptcy 110.
    let mut s = Scripted::new([(0, vec![units(Side::Sell, LONG_10)])]);
    let bars = [
        flat(100.0),
        flat(100.0),
        (101.0, 112.0, 100.0, 111.0),
        flat(111.0),
    ];
    let report = run(&bars, &perp(inst(), 10.0, Funding::None), &mut s);
    let t = &report.trades[0];
    assert_eq!(t.exit_reason, ExitReason::Liquidation);
    assert_close(t.exit_price, 110.0);
    assert_close(t.liquidation_price.unwrap(), 109.5);
    assert_close(report.final_equity, 9_899.5);
}

/// Ten flat hourly bars at 100; funding every 8 h at `rate`: bar 8 opens at
/// a funding time (T0 + 8 h).
fn funding_run(script: Vec<(usize, Vec<Action>)>, rate: f64) -> (Report, Scripted) {
    let mut s = Scripted::new(script);
    let report = run(
        &[flat(100.0); 10],
        &perp(inst(), 10.0, Funding::Constant(rate)),
        &mut s,
    );
    (report, s)
}

#[test]
fn funding_is_not_paid_by_a_position_opened_at_that_open() {
    // Bought at bar 7's close, filled at bar 8's open = the funding time:
    // funding settles first, while flat.
    let (report, _) = funding_run(vec![(7, vec![units(Side::Buy, LONG_10)])], 0.0001);
    assert_eq!(report.funding_paid, Some(0.0));
    assert_eq!(report.funding_source, Some(FundingSource::Constant));
}

#[test]
fn funding_is_paid_by_a_position_closed_at_that_open() {
    // Long 10 from bar 1; closed at bar 8's open, after funding:
    // 10 x mark (open of bar 8, 100) x 0.0001 = 0.1 paid.
    // pnl = 0 - 0.5 - 0.5 (fees) - 0.1 = -1.1; equity 10,000 - 1.1.
    let (report, s) = funding_run(
        vec![
            (0, vec![units(Side::Buy, LONG_10)]),
            (7, vec![Action::ClosePosition]),
        ],
        0.0001,
    );
    assert_close(report.funding_paid.unwrap(), 0.1);
    let t = &report.trades[0];
    assert_eq!(t.exit_bar, 8);
    assert_close(t.funding.unwrap(), 0.1);
    assert_close(t.pnl, -1.1);
    assert_close(report.final_equity, 9_998.9);
    assert_eq!(s.seen_at(1).funding_rate, Some(0.0001));
}

#[test]
fn negative_rates_pay_longs_and_charge_shorts() {
    // Rate -0.0001: a long receives 10 x 100 x 0.0001 = 0.1 (funding_paid
    // -0.1, pnl -1 + 0.1 = -0.9); a short pays it (pnl -1.1).
    let (long, _) = funding_run(
        vec![
            (0, vec![units(Side::Buy, LONG_10)]),
            (7, vec![Action::ClosePosition]),
        ],
        -0.0001,
    );
    assert_close(long.funding_paid.unwrap(), -0.1);
    assert_close(long.trades[0].pnl, -0.9);
    assert_close(long.final_equity, 9_999.1);
    let (short, _) = funding_run(
        vec![
            (0, vec![units(Side::Sell, LONG_10)]),
            (7, vec![Action::ClosePosition]),
        ],
        -0.0001,
    );
    assert_close(short.funding_paid.unwrap(), 0.1);
    assert_close(short.trades[0].pnl, -1.1);
}

#[test]
fn funding_the_wallet_cannot_pay_comes_out_of_the_position_margin() {
    // Capital 101 (so the wallet after opening is 101 - 100 - 0.5 = 0.5),
    // long 10 at 100, rate 0.001: payment 10 x 100 x 0.001 = 1; the wallet
    // pays 0.5, PM 100 -> 99.5, LP = 100 - (99.5 - 5) / 10 = 90.55.
    let mut s = Scripted::new([(0, vec![units(Side::Buy, LONG_10)])]);
    let config = BacktestConfig {
        initial_capital: 101.0,
        ..perp(inst(), 10.0, Funding::Constant(0.001))
    };
    let report = run(&[flat(100.0); 10], &config, &mut s);
    let seen = s.seen_at(8);
    assert_eq!(seen.cash, 0.0);
    assert_close(seen.liquidation_price.unwrap(), 90.55);
    // Equity = 0 + 99.5 + 0.
    assert_close(report.final_equity, 99.5);
}

#[test]
fn a_funding_history_sets_the_times_and_the_rate_the_strategy_sees() {
    // One funding at bar 3 (T0 + 3 h) of 0.0002: the long of 10 pays
    // 10 x 100 x 0.0002 = 0.2; before it no rate is known.
    let history = Funding::history(vec![(ts(3), 0.0002)]).unwrap();
    let mut s = Scripted::new([(0, vec![units(Side::Buy, LONG_10)])]);
    let report = run(&[flat(100.0); 6], &perp(inst(), 10.0, history), &mut s);
    assert_close(report.funding_paid.unwrap(), 0.2);
    assert_eq!(report.funding_source, Some(FundingSource::History));
    assert_eq!(s.seen_at(1).funding_rate, None);
    assert_eq!(s.seen_at(3).funding_rate, Some(0.0002));
}

#[test]
fn funding_csv_errors_name_the_line() {
    let good = parse_funding_csv("ts,rate\n1704067200,0.0001\n1704096000000,-0.0002\n").unwrap();
    assert_eq!(
        good,
        Funding::history(vec![(1_704_067_200, 0.0001), (1_704_096_000, -0.0002)]).unwrap()
    );
    let err = parse_funding_csv("ts,rate\n200,0.1\n100,0.1\n").unwrap_err();
    assert!(err.to_string().contains("line 3"), "{err}");
    let err = parse_funding_csv("ts,rate\n100,0.1\n200,abc\n").unwrap_err();
    assert!(
        err.to_string().contains("line 3") && err.to_string().contains("abc"),
        "{err}"
    );
    assert!(parse_funding_csv("time,rate\n").is_err());
}

#[test]
fn a_limit_that_rested_pays_maker_a_market_order_pays_taker() {
    // Buy limit 10 at 95 placed at bar 0's close; bar 1 opens 100 and
    // trades down to 94: filled at 95 as maker, 10 x 95 x 0.0002 = 0.19.
    // Closed at market at bar 3's open (100): taker 10 x 100 x 0.0005 = 0.5.
    let mut s = Scripted::new([
        (0, vec![limit(Side::Buy, 10.0, 95.0)]),
        (2, vec![Action::ClosePosition]),
    ]);
    let bars = [
        flat(100.0),
        (100.0, 100.0, 94.0, 96.0),
        flat(100.0),
        flat(100.0),
    ];
    let report = run(&bars, &perp(inst(), 10.0, Funding::None), &mut s);
    assert_close(report.fees_maker.unwrap(), 0.19);
    assert_close(report.fees_taker.unwrap(), 0.5);
    assert_close(report.fees_paid, 0.69);
    // A limit whose first bar opens beyond it (94 < 95) crosses on
    // arrival: taker, 10 x 94 x 0.0005 = 0.47.
    let mut s = Scripted::new([(0, vec![limit(Side::Buy, 10.0, 95.0)])]);
    let bars = [flat(100.0), (94.0, 96.0, 94.0, 96.0), flat(96.0)];
    let report = run(&bars, &perp(inst(), 10.0, Funding::None), &mut s);
    assert_close(report.fees_maker.unwrap(), 0.0);
    assert_close(report.fees_taker.unwrap(), 0.47);
}

#[test]
fn orders_below_min_qty_or_beyond_the_margin_are_rejected_and_counted() {
    // 0.0004 floors to 0 (step 0.001): below_min_qty. 1,000 at 100, 10x:
    // IM 10,000 + fee 50 > wallet 10,000: insufficient_margin.
    let mut s = Scripted::new([
        (0, vec![units(Side::Buy, 0.0004)]),
        (1, vec![units(Side::Buy, 1_000.0)]),
    ]);
    let report = run(
        &[flat(100.0); 4],
        &perp(inst(), 10.0, Funding::None),
        &mut s,
    );
    let expected: BTreeMap<String, u64> = [
        (BELOW_MIN_QTY.to_string(), 1),
        (INSUFFICIENT_MARGIN.to_string(), 1),
    ]
    .into();
    assert_eq!(report.rejected_orders, Some(expected));
    assert!(report.trades.is_empty() && report.open_position.is_none());
    assert_eq!(report.final_equity, CAPITAL);
    // 999 fits: IM 9,990 + fee 49.95 = 10,039.95? No: that is above 10,000
    // too. 990 does: 9,900 + 49.5 = 9,949.5.
    let mut s = Scripted::new([(0, vec![units(Side::Buy, 990.0)])]);
    let report = run(
        &[flat(100.0); 3],
        &perp(inst(), 10.0, Funding::None),
        &mut s,
    );
    assert_eq!(report.rejected_orders, Some(BTreeMap::new()));
    assert_eq!(s.seen_at(1).position, 990.0);
}

#[test]
fn all_in_sizing_floors_to_the_step() {
    // floor_step(10,000 x 10 / (100 x (1 + 10 x 0.0005))) =
    // floor_step(100,000 / 100.5 = 995.0248...) = 995.024.
    let buy_all = Action::Submit(Order {
        side: Side::Buy,
        quantity: Quantity::Equity(1.0),
        kind: OrderKind::Market,
        stop_loss: None,
        take_profit: None,
    });
    let mut s = Scripted::new([(0, vec![buy_all])]);
    run(
        &[flat(100.0); 3],
        &perp(inst(), 10.0, Funding::None),
        &mut s,
    );
    assert_close(s.seen_at(1).position, 995.024);
    assert_close(all_in_qty(CAPITAL, 10.0, 100.0, &inst()), 995.024);
}

#[test]
fn leverage_above_the_instruments_maximum_names_leverage() {
    let config = perp(
        Instrument {
            max_leverage: 50.0,
            ..inst()
        },
        51.0,
        Funding::None,
    );
    let err = run_backtest(&candles(&[flat(1.0)]), &mut Scripted::default(), &config).unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::InvalidConfig {
                field: "leverage",
                ..
            }
        ),
        "{err}"
    );
    let config = perp(
        Instrument {
            qty_step: 0.0,
            ..inst()
        },
        10.0,
        Funding::None,
    );
    let err = run_backtest(&candles(&[flat(1.0)]), &mut Scripted::default(), &config).unwrap_err();
    assert!(err.to_string().contains("qty_step"), "{err}");
}

#[test]
fn the_instrument_round_trips_through_json() {
    let json = serde_json::to_string(&tiered()).unwrap();
    assert!(json.contains("\"up_to_value\":null"), "{json}");
    assert_eq!(Instrument::from_json(&json).unwrap(), tiered());
    let bad = json.replace("\"min_qty\":0.001", "\"min_qty\":-1.0");
    assert_eq!(Instrument::from_json(&bad).unwrap_err().field, "min_qty");
    Instrument::bybit_default().check().unwrap();
}

#[test]
fn guest_side_fills_are_refused_under_perpetuals() {
    struct Planner;
    impl Strategy for Planner {
        fn on_bars(
            &mut self,
            _: &Candles,
            start: usize,
            _: usize,
            _: &PortfolioView<'_>,
            _: &mut Vec<Action>,
            plan: &mut Plan,
        ) -> Result<usize, StrategyError> {
            plan.actions.push((start, Action::ClosePosition));
            Ok(2)
        }
    }
    let err = run_backtest(
        &candles(&[flat(100.0); 4]),
        &mut Planner,
        &perp(inst(), 10.0, Funding::None),
    )
    .unwrap_err();
    assert!(matches!(err, EngineError::Protocol(_)), "{err}");
}

/// The issue's story: the native ema-crossover (fast 2, slow 5, long only)
/// at 10x on 62 hourly bars; price drifts down from 100 to 95.65, jumps to
/// 97 at bar 30 (a crossover: buy at bar 31's open, 97), and bar 32 falls
/// 15 % (to 82.45).
#[test]
fn the_issue_story_is_liquidated_near_87_8_and_loses_only_its_margin() {
    let mut bars = Vec::new();
    for i in 0..30 {
        let p = 100.0 - 0.15 * i as f64;
        bars.push(flat(p));
    }
    bars.push((95.65, 97.0, 95.65, 97.0));
    bars.push(flat(97.0));
    bars.push((97.0, 97.0, 82.45, 82.45));
    while bars.len() < 62 {
        bars.push(flat(82.45));
    }
    let c = candles(&bars);
    let strategy = || crate::reference::EmaCrossover::new(2, 5, false);
    // Spot at 10x goes below zero, as the issue says.
    let spot = BacktestConfig {
        leverage: 10.0,
        ..BacktestConfig::default()
    };
    let spot_report = run_backtest(&c, &mut strategy(), &spot).unwrap();
    assert!(
        spot_report.final_equity < 0.0,
        "{}",
        spot_report.final_equity
    );
    // Perpetual, the BTCUSDT defaults (taker 0.00055, mmr 0.005, step 0.001):
    let config = BacktestConfig {
        leverage: 10.0,
        market: Market::LinearPerpetual,
        ..BacktestConfig::default()
    };
    let report = run_backtest(&c, &mut strategy(), &config).unwrap();
    // qty = floor_step(10,000 x 10 / (97 x (1 + 10 x 0.00055))) =
    // floor_step(100,000 / 97.5335 = 1,025.2888...) = 1,025.288.
    let qty = 1_025.288;
    let p = 97.0;
    let im = qty * p / 10.0; // 9,945.2936
    let fee = qty * p * 0.00055; // 54.699...
                                 // LP = P - (IM - MM) / qty = 97 - 9.7 + 97 x 0.005 = 87.785.
                                 // Bankruptcy = 97 x (1 - 1/10) = 87.3.
    assert_eq!(report.trades.len(), 1);
    let t = &report.trades[0];
    assert_close(t.qty, qty);
    assert_eq!(t.entry_bar, 31);
    assert_eq!(t.exit_bar, 32);
    assert_eq!(t.exit_reason, ExitReason::Liquidation);
    assert!((t.liquidation_price.unwrap() - 87.785).abs() < 1e-9);
    assert!((t.exit_price - 87.3).abs() < 1e-9);
    // Loss = margin + entry fee, no more.
    assert!((t.pnl - -(im + fee)).abs() < 1e-6, "{}", t.pnl);
    let final_equity = CAPITAL - im - fee; // about 0.0069
    assert!((report.final_equity - final_equity).abs() < 1e-6);
    assert!(report.final_equity >= 0.0);
    assert!(report.equity_curve.iter().all(|p| p.equity >= 0.0));
}

/// Spot runs are untouched by the perpetual fields: any perp settings on a
/// spot config give the plain default config's report, byte for byte, and
/// the report has none of the new keys.
#[test]
fn a_spot_report_ignores_perpetual_settings_and_has_no_new_keys() {
    let c = crate::candles::synth(3_000, 11, 3_600, T0, 100.0);
    let plain = BacktestConfig {
        leverage: 3.0,
        ..BacktestConfig::default()
    };
    let decorated = BacktestConfig {
        perp: PerpConfig {
            instrument: Some(Arc::new(tiered())),
            funding: Funding::Constant(0.01),
            mark: Some(Arc::new(c.clone())),
        },
        ..plain.clone()
    };
    let s = || crate::reference::EmaCrossover::new(5, 20, true);
    let a = run_backtest(&c, &mut s(), &plain).unwrap();
    let b = run_backtest(&c, &mut s(), &decorated).unwrap();
    let (ja, jb) = (a.to_json().unwrap(), b.to_json().unwrap());
    assert_eq!(ja, jb);
    assert_eq!(
        a.into_compact_json().unwrap(),
        b.into_compact_json().unwrap()
    );
    for key in [
        "\"market\":",
        "liquidation",
        "funding",
        "fees_maker",
        "fees_taker",
        "rejected_orders",
    ] {
        assert!(!ja.contains(key), "{key} in a spot report");
    }
    assert!(ja.contains("\"exit_reason\""));
}

/// For random bars, leverages 1-100 and random market, limit and stop
/// orders (with random exits), equity never drops below zero under
/// linear_perpetual, and every trade loses at most its margin and fees.
#[test]
fn equity_never_goes_below_zero_under_perpetuals() {
    let mut rng = SplitMix64::new(20);
    let (mut liquidations, mut trades, mut rejected) = (0, 0, 0);
    for case in 0..200 {
        let n = 40 + rng.below(160) as usize;
        let mut bars = Vec::with_capacity(n);
        let mut price = 100.0;
        for _ in 0..n {
            // Moves up to +-20 % per bar, wicks up to 15 %.
            let u = |rng: &mut SplitMix64| rng.below(1_000_001) as f64 / 1_000_000.0;
            let open = price * (1.0 + 0.05 * (u(&mut rng) - 0.5));
            let close = open * (1.0 + 0.4 * (u(&mut rng) - 0.5));
            let high = open.max(close) * (1.0 + 0.15 * u(&mut rng));
            let low = open.min(close) * (1.0 - 0.15 * u(&mut rng));
            bars.push((open, high, low, close));
            price = close;
        }
        let leverage = 1.0 + rng.below(100) as f64;
        let mut script = Vec::new();
        for (i, bar) in bars.iter().enumerate() {
            if rng.below(3) != 0 {
                continue;
            }
            let side = if rng.below(2) == 0 {
                Side::Buy
            } else {
                Side::Sell
            };
            let p = bar.3;
            let quantity = if rng.below(2) == 0 {
                Quantity::Equity(0.1 + rng.below(10) as f64 / 10.0)
            } else {
                Quantity::Units(0.001 + rng.below(5_000) as f64 / 100.0)
            };
            let offset = 1.0 + (rng.below(200) as f64 - 100.0) / 1_000.0;
            let kind = match rng.below(3) {
                0 => OrderKind::Market,
                1 => OrderKind::Limit(p * offset),
                _ => OrderKind::Stop(p * offset),
            };
            let sl = (rng.below(3) == 0).then(|| {
                p * (1.0 - side.sign() * rng.below(300) as f64 / 1_000.0 - side.sign() * 0.001)
            });
            let tp = (rng.below(3) == 0).then(|| {
                p * (1.0 + side.sign() * rng.below(300) as f64 / 1_000.0 + side.sign() * 0.001)
            });
            let action = match rng.below(8) {
                0 => Action::ClosePosition,
                1 => Action::CancelOrders,
                _ => Action::Submit(Order {
                    side,
                    quantity,
                    kind,
                    stop_loss: sl,
                    take_profit: tp,
                }),
            };
            script.push((i, vec![action]));
        }
        let funding = match case % 3 {
            0 => Funding::None,
            1 => Funding::Constant(0.001 * (rng.below(21) as f64 - 10.0)),
            _ => Funding::history(
                (1..n as i64)
                    .step_by(3)
                    .map(|k| (ts(0) + k * HOUR, 0.002))
                    .collect(),
            )
            .unwrap(),
        };
        let config = BacktestConfig {
            initial_capital: 1_000.0,
            leverage,
            equity_curve_points: n,
            market: Market::LinearPerpetual,
            perp: PerpConfig {
                instrument: None,
                funding,
                mark: None,
            },
            ..BacktestConfig::default()
        };
        let mut s = Scripted::new(script);
        let c = candles(&bars);
        let report = run_backtest(&c, &mut s, &config).unwrap();
        assert_eq!(report.equity_curve.len(), n);
        for point in &report.equity_curve {
            assert!(
                point.equity >= 0.0,
                "case {case}: equity {} at {}",
                point.equity,
                point.ts
            );
        }
        for seen in &s.seen {
            assert!(seen.cash >= 0.0, "case {case}: wallet {}", seen.cash);
        }
        assert!(report.final_equity >= 0.0);
        liquidations += report.liquidations.unwrap();
        trades += report.trades.len();
        rejected += report.rejected_orders.unwrap().values().sum::<u64>();
    }
    // The cases do reach the rules under test.
    assert!(
        liquidations > 20 && trades > 200 && rejected > 20,
        "{liquidations} {trades} {rejected}"
    );
}

#[test]
fn liquidation_follows_the_mark_price_not_the_trade_price() {
    // Long 10 at 100 (LP 90.5). Bar 2 trades down to 85 but its mark low
    // is 91: no liquidation. Bar 3's mark low 90 reaches LP (its trade low
    // is 95): liquidated at the bankruptcy price 90.
    let bars = [
        flat(100.0),
        flat(100.0),
        (99.0, 99.0, 85.0, 96.0),
        (96.0, 97.0, 95.0, 96.0),
        flat(96.0),
    ];
    let mut marks = candles(&bars);
    marks.low[2] = 91.0;
    marks.low[3] = 90.0;
    let mut config = perp(inst(), 10.0, Funding::None);
    config.perp.mark = Some(Arc::new(marks));
    let mut s = Scripted::new([(0, vec![units(Side::Buy, LONG_10)])]);
    let report = run(&bars, &config, &mut s);
    let t = &report.trades[0];
    assert_eq!(t.exit_reason, ExitReason::Liquidation);
    assert_eq!(t.exit_bar, 3);
    assert_close(t.exit_price, 90.0);
}

#[test]
fn funding_in_a_gap_uses_the_last_close_before_it() {
    // Bars at 0 h .. 6 h, then the next bar at 9 h: funding at 8 h settles
    // at the 9 h bar's open, marked at the close of the 6 h bar (110):
    // 10 x 110 x 0.0001 = 0.11.
    let mut c = Candles::new();
    for k in 0..7 {
        let p: f64 = if k == 6 { 110.0 } else { 100.0 };
        c.push(ts(k), 100.0, p.max(100.0), 100.0, p, 1.0);
    }
    c.push(ts(9), 120.0, 120.0, 120.0, 120.0, 1.0);
    c.push(ts(10), 120.0, 120.0, 120.0, 120.0, 1.0);
    c.validate().unwrap();
    let mut s = Scripted::new([(0, vec![units(Side::Buy, LONG_10)])]);
    let report = run_backtest(&c, &mut s, &perp(inst(), 10.0, Funding::Constant(0.0001))).unwrap();
    assert_close(report.funding_paid.unwrap(), 0.11);
}

#[test]
fn a_reversal_whose_new_side_lacks_margin_is_rejected_whole() {
    // Long 10 at 100 (wallet 9,899.5). Sell 1,010 units at 100: closes 10
    // (wallet would be 9,899.5 + 100 - 0.5 = 9,999) and opens 1,000 short,
    // needing 10,000 + 50 > 9,999: rejected, nothing fills, still long 10.
    let mut s = Scripted::new([
        (0, vec![units(Side::Buy, LONG_10)]),
        (1, vec![units(Side::Sell, 1_010.0)]),
    ]);
    let report = run(
        &[flat(100.0); 4],
        &perp(inst(), 10.0, Funding::None),
        &mut s,
    );
    assert_eq!(s.seen_at(2).position, 10.0);
    assert!(report.trades.is_empty());
    assert_eq!(report.rejected_orders.unwrap()[INSUFFICIENT_MARGIN], 1);
}

/// Bars per second of the same 1,000,000-bar EMA run on spot and on a 10x
/// perpetual with funding every 8 h (a measurement, not a check: run
/// with `cargo test --release -p stratbox-engine perp_speed -- --ignored
/// --nocapture`).
#[test]
#[ignore]
fn perp_speed() {
    let c = crate::candles::synth(1_000_000, 42, 60, T0, 42_000.0);
    let spot = BacktestConfig {
        leverage: 10.0,
        ..BacktestConfig::default()
    };
    let perp = BacktestConfig {
        leverage: 10.0,
        market: Market::LinearPerpetual,
        perp: PerpConfig {
            funding: Funding::Constant(0.0001),
            ..PerpConfig::default()
        },
        ..BacktestConfig::default()
    };
    // The same trades on both: no fees, leverage 1 (at 10x with fees the
    // perpetual account is drained to below min_qty and stops trading).
    let spot_same = BacktestConfig {
        commission: 0.0,
        ..BacktestConfig::default()
    };
    let free = Instrument {
        maker_fee: 0.0,
        taker_fee: 0.0,
        qty_step: 1e-9,
        min_qty: 1e-9,
        ..Instrument::bybit_default()
    };
    let perp_same = BacktestConfig {
        market: Market::LinearPerpetual,
        perp: PerpConfig {
            instrument: Some(Arc::new(free)),
            funding: Funding::Constant(0.0001),
            mark: None,
        },
        ..spot_same.clone()
    };
    let cases = [
        ("spot 10x", &spot),
        ("linear_perpetual 10x", &perp),
        ("spot 1x no fees", &spot_same),
        ("linear_perpetual 1x no fees", &perp_same),
    ];
    let only = std::env::var("PERP_SPEED_ONLY").ok();
    for round in 0..3 {
        for (name, config) in cases {
            if only.as_deref().is_some_and(|o| o != name) {
                continue;
            }
            let mut s = crate::reference::EmaCrossover::new(10, 30, true);
            let t = std::time::Instant::now();
            let report = run_backtest(&c, &mut s, config).unwrap();
            let secs = t.elapsed().as_secs_f64();
            println!(
                "round {round} {name}: {:.1} M bars/s, {} trades, {:?} liquidations",
                1e-6 * c.len() as f64 / secs,
                report.num_trades,
                report.liquidations
            );
        }
    }
}
