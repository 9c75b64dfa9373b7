//! Portfolio runs against single-symbol runs and hand-computed accounts.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::candles::{synth, Candles};
use crate::perp::{Funding, Instrument, PerpConfig};
use crate::scripted::Scripted;
use crate::{
    run_backtest, Action, BacktestConfig, EngineError, ExitReason, Market, Order, OrderKind,
    Quantity, Side, StrategyError,
};

fn market(side: Side, quantity: Quantity) -> Action {
    Action::Submit(Order {
        side,
        quantity,
        kind: OrderKind::Market,
        stop_loss: None,
        take_profit: None,
    })
}

/// What the strategy saw at the start of one call.
struct Seen {
    start: usize,
    end: usize,
    cash: f64,
    positions: Vec<PositionView>,
    fills: Vec<SymbolFill>,
}

/// Takes scripted actions at given steps and records every call.
#[derive(Default)]
struct ScriptedSteps {
    script: BTreeMap<usize, Vec<SymbolAction>>,
    seen: Vec<Seen>,
}

impl ScriptedSteps {
    fn new(script: impl IntoIterator<Item = (usize, Vec<SymbolAction>)>) -> Self {
        Self {
            script: script.into_iter().collect(),
            seen: Vec::new(),
        }
    }
}

impl PortfolioStrategy for ScriptedSteps {
    fn on_steps(
        &mut self,
        _universe: &Universe,
        start: usize,
        end: usize,
        account: &AccountView<'_>,
        actions: &mut Vec<SymbolAction>,
    ) -> Result<usize, StrategyError> {
        self.seen.push(Seen {
            start,
            end,
            cash: account.cash,
            positions: account.positions.to_vec(),
            fills: account.fills.to_vec(),
        });
        for i in start..end {
            if let Some(scripted) = self.script.get(&i) {
                actions.extend_from_slice(scripted);
                return Ok(i + 1 - start);
            }
        }
        Ok(end - start)
    }
}

/// Runs a single-symbol script on each symbol independently: the
/// [`crate::Strategy`] side of the comparisons below.
fn single(
    candles: &Candles,
    script: Vec<(usize, Vec<Action>)>,
    config: &BacktestConfig,
) -> crate::Report {
    run_backtest(candles, &mut Scripted::new(script), config).unwrap()
}

fn universe(series: &[(&str, &Candles)]) -> Universe {
    Universe::new(
        series
            .iter()
            .map(|(name, c)| (name.to_string(), Arc::new((*c).clone())))
            .collect(),
    )
    .unwrap()
}

fn on(symbol: usize, action: Action) -> SymbolAction {
    SymbolAction { symbol, action }
}

/// Symbols that never interact trade, per symbol, exactly as two
/// single-symbol backtests with half the capital each (spot): the shared
/// cash changes nothing when orders are in units and each fits.
#[test]
fn two_independent_symbols_trade_as_two_half_capital_backtests() {
    let a = synth(400, 11, 3_600, 1_704_067_200, 100.0);
    let b = synth(400, 12, 3_600, 1_704_067_200, 50.0);
    let script_a: Vec<(usize, Vec<Action>)> = vec![
        (10, vec![market(Side::Buy, Quantity::Units(20.0))]),
        (60, vec![Action::ClosePosition]),
        (100, vec![market(Side::Sell, Quantity::Units(10.0))]),
        (250, vec![market(Side::Buy, Quantity::Units(10.0))]),
    ];
    let script_b: Vec<(usize, Vec<Action>)> = vec![
        (30, vec![market(Side::Buy, Quantity::Units(30.0))]),
        (60, vec![Action::ClosePosition]),
        (
            200,
            vec![Action::Submit(Order {
                side: Side::Buy,
                quantity: Quantity::Units(40.0),
                kind: OrderKind::Limit(b.close[200] * 0.98),
                stop_loss: None,
                take_profit: None,
            })],
        ),
        (380, vec![Action::ClosePosition]),
    ];
    let half = BacktestConfig {
        initial_capital: 5_000.0,
        ..BacktestConfig::default()
    };
    let alone_a = single(&a, script_a.clone(), &half);
    let alone_b = single(&b, script_b.clone(), &half);
    let mut merged: BTreeMap<usize, Vec<SymbolAction>> = BTreeMap::new();
    for (symbol, script) in [(0, &script_a), (1, &script_b)] {
        for (step, actions) in script {
            merged
                .entry(*step)
                .or_default()
                .extend(actions.iter().map(|&a| on(symbol, a)));
        }
    }
    let config = BacktestConfig {
        initial_capital: 10_000.0,
        ..BacktestConfig::default()
    };
    let report = run_portfolio(
        &universe(&[("A", &a), ("B", &b)]),
        &mut ScriptedSteps::new(merged),
        &config,
        &[],
        &mut |_| {},
    )
    .unwrap();
    for (name, alone) in [("A", &alone_a), ("B", &alone_b)] {
        let mine: Vec<_> = report
            .trades
            .iter()
            .filter(|t| t.symbol.as_deref() == Some(name))
            .map(|t| crate::Trade {
                symbol: None,
                ..t.clone()
            })
            .collect();
        assert!(!mine.is_empty(), "{name} traded");
        assert_eq!(mine, alone.trades, "{name}'s trades");
        let summary = report
            .symbols
            .as_ref()
            .unwrap()
            .iter()
            .find(|s| s.symbol == name)
            .unwrap();
        assert_eq!(summary.num_trades, alone.num_trades);
        assert_eq!(summary.fees_paid.to_bits(), alone.fees_paid.to_bits());
        assert_eq!(summary.open_position, alone.open_position);
    }
    // One account: the two halves' gains add up (to rounding).
    let gains = (alone_a.final_equity - 5_000.0) + (alone_b.final_equity - 5_000.0);
    assert!(
        (report.final_equity - 10_000.0 - gains).abs() < 1e-6,
        "{} against {}",
        report.final_equity,
        10_000.0 + gains
    );
    assert_eq!(report.num_trades, alone_a.num_trades + alone_b.num_trades);
    // Trades come by exit time.
    assert!(report
        .trades
        .windows(2)
        .all(|w| w[0].exit_ts <= w[1].exit_ts));
}

/// A symbol missing bars mid-range sees none there (NaN columns, nothing
/// filled forward), and its market order waits for its next bar.
#[test]
fn a_symbol_missing_bars_sees_none_and_fills_at_its_next_bar() {
    let a = synth(50, 3, 60, 1_704_067_200, 100.0);
    let full = synth(50, 4, 60, 1_704_067_200, 20.0);
    // B has no bars at steps 20..30.
    let keep: Vec<usize> = (0..50).filter(|i| !(20..30).contains(i)).collect();
    let b = Candles {
        ts: keep.iter().map(|&i| full.ts[i]).collect(),
        open: keep.iter().map(|&i| full.open[i]).collect(),
        high: keep.iter().map(|&i| full.high[i]).collect(),
        low: keep.iter().map(|&i| full.low[i]).collect(),
        close: keep.iter().map(|&i| full.close[i]).collect(),
        volume: keep.iter().map(|&i| full.volume[i]).collect(),
    };
    let u = universe(&[("A", &a), ("B", &b)]);
    assert_eq!(u.steps(), 50);
    for step in 20..30 {
        let s = &u.symbols[1];
        assert!(s.open[step].is_nan() && s.close[step].is_nan() && s.volume[step].is_nan());
        assert_eq!(s.bar_at(step), None);
    }
    assert_eq!(u.symbols[1].bar_at(30), Some(20));
    assert_eq!(u.symbols[1].close[30].to_bits(), full.close[30].to_bits());
    // An order for B at step 22's close fills at B's next bar (step 30),
    // at its open; one for A at the same close fills at step 23.
    let mut strategy = ScriptedSteps::new([(
        22,
        vec![
            on(1, market(Side::Buy, Quantity::Units(10.0))),
            on(0, market(Side::Buy, Quantity::Units(1.0))),
        ],
    )]);
    let report = run_portfolio(
        &u,
        &mut strategy,
        &BacktestConfig::default(),
        &[],
        &mut |_| {},
    )
    .unwrap();
    let fills: Vec<(usize, SymbolFill)> = strategy
        .seen
        .iter()
        .flat_map(|seen| seen.fills.iter().map(move |f| (seen.start, *f)))
        .collect();
    assert_eq!(fills.len(), 2, "{fills:?}");
    assert_eq!(fills[0].0, 23);
    assert_eq!(fills[0].1.symbol, 0);
    assert_eq!(fills[0].1.fill.price.to_bits(), a.open[23].to_bits());
    assert_eq!(fills[1].0, 30);
    assert_eq!(fills[1].1.symbol, 1);
    assert_eq!(fills[1].1.fill.ts, full.ts[30]);
    assert_eq!(fills[1].1.fill.price.to_bits(), full.open[30].to_bits());
    // B's pending order ends the call at B's next bar, step 30, and no
    // call began inside B's gap after step 23: nothing could fill there.
    let at_23 = strategy.seen.iter().find(|s| s.start == 23).unwrap();
    assert_eq!(at_23.end, 30);
    assert!(strategy.seen.iter().all(|s| !(24..30).contains(&s.start)));
    let b_summary = &report.symbols.as_ref().unwrap()[1];
    assert_eq!(b_summary.bars, 40);
    assert!(b_summary.open_position.is_some());
}

/// Orders placed on one step fill on the next in the order the strategy
/// placed them, across symbols: a rotation that sells B to buy A (A
/// first in the universe) has B's cash when A's buy fills.
#[test]
fn a_rotation_sells_before_it_buys_whatever_the_symbol_order() {
    let a = synth(30, 5, 60, 1_704_067_200, 100.0);
    let b = synth(30, 6, 60, 1_704_067_200, 100.0);
    let mut strategy = ScriptedSteps::new([
        (2, vec![on(1, market(Side::Buy, Quantity::Equity(1.0)))]),
        (
            10,
            vec![
                on(1, Action::ClosePosition),
                on(0, market(Side::Buy, Quantity::Equity(1.0))),
            ],
        ),
    ]);
    let config = BacktestConfig::default();
    let report = run_portfolio(
        &universe(&[("A", &a), ("B", &b)]),
        &mut strategy,
        &config,
        &[],
        &mut |_| {},
    )
    .unwrap();
    let at_11 = strategy.seen.iter().find(|s| s.start == 11).unwrap();
    let fills = &at_11.fills;
    assert_eq!(fills.len(), 2);
    assert_eq!((fills[0].symbol, fills[0].fill.side), (1, Side::Sell));
    assert_eq!((fills[1].symbol, fills[1].fill.side), (0, Side::Buy));
    // All in on A with the whole cash B's sale brought
    // (docs/conventions/engine.md, "Sizing").
    let before = strategy.seen.iter().rev().find(|s| s.start <= 10).unwrap();
    let sale = fills[0].fill;
    let cash_after_sale = before.cash + (sale.qty * sale.price - sale.fee);
    let expected_qty = cash_after_sale / (a.open[11] * (1.0 + config.commission));
    assert_eq!(fills[1].fill.qty.to_bits(), expected_qty.to_bits());
    assert!(
        at_11.cash.abs() < 1e-9 * cash_after_sale,
        "all in: cash {}",
        at_11.cash
    );
    assert_eq!(report.trades.len(), 1);
}

/// Perpetuals: a 10x long on A that gaps through its liquidation price is
/// liquidated at its bankruptcy price and loses its margin; B's position,
/// margin and trades are what they would have been alone.
#[test]
fn one_perpetual_liquidation_leaves_the_other_position_untouched() {
    let flat = |n: usize, price: f64| Candles {
        ts: (0..n as i64).map(|i| 1_704_067_200 + i * 3_600).collect(),
        open: vec![price; n],
        high: vec![price * 1.001; n],
        low: vec![price * 0.999; n],
        close: vec![price; n],
        volume: vec![1.0; n],
    };
    let mut a = flat(40, 100.0);
    // A falls 15% at bar 10's open and stays there.
    for i in 10..40 {
        a.open[i] = 85.0;
        a.high[i] = 85.1;
        a.low[i] = 84.9;
        a.close[i] = 85.0;
    }
    let b = flat(40, 50.0);
    let instrument = Arc::new(Instrument {
        maker_fee: 0.0,
        taker_fee: 0.0,
        ..Instrument::bybit_default()
    });
    let perp = PerpConfig {
        instrument: Some(instrument.clone()),
        funding: Funding::None,
        mark: None,
    };
    let config = BacktestConfig {
        initial_capital: 10_000.0,
        leverage: 10.0,
        market: Market::LinearPerpetual,
        perp: perp.clone(),
        ..BacktestConfig::default()
    };
    let mut strategy = ScriptedSteps::new([
        (
            2,
            vec![
                on(0, market(Side::Buy, Quantity::Units(10.0))),
                on(1, market(Side::Buy, Quantity::Units(20.0))),
            ],
        ),
        (30, vec![on(1, Action::ClosePosition)]),
    ]);
    let report = run_portfolio(
        &universe(&[("A", &a), ("B", &b)]),
        &mut strategy,
        &config,
        &[perp.clone(), perp.clone()],
        &mut |_| {},
    )
    .unwrap();
    // A: IM = 10 x 100 / 10 = 100; bankruptcy price 100 x (1 - 1/10) = 90.
    let trades: Vec<_> = report.trades.iter().collect();
    assert_eq!(trades.len(), 2, "{trades:?}");
    let liquidated = trades
        .iter()
        .find(|t| t.symbol.as_deref() == Some("A"))
        .unwrap();
    assert_eq!(liquidated.exit_reason, ExitReason::Liquidation);
    assert_eq!(liquidated.exit_ts, a.ts[10]);
    assert!((liquidated.exit_price - 90.0).abs() < 1e-9);
    assert!(
        (liquidated.pnl + 100.0).abs() < 1e-9,
        "loses its margin: {}",
        liquidated.pnl
    );
    assert_eq!(report.liquidations, Some(1));
    // B alone, with the same wallet left for it.
    let alone_b = run_backtest(
        &b,
        &mut Scripted::new([
            (2, vec![market(Side::Buy, Quantity::Units(20.0))]),
            (30, vec![Action::ClosePosition]),
        ]),
        &config,
    )
    .unwrap();
    let b_trade = trades
        .iter()
        .find(|t| t.symbol.as_deref() == Some("B"))
        .unwrap();
    assert_eq!(
        crate::Trade {
            symbol: None,
            ..(*b_trade).clone()
        },
        alone_b.trades[0]
    );
    // B's position kept its margin and had no liquidation price crossed.
    let at_20 = strategy.seen.iter().rev().find(|s| s.start <= 20).unwrap();
    assert_eq!(at_20.positions[0].qty, 0.0);
    assert_eq!(at_20.positions[1].qty, 20.0);
    let summaries = report.symbols.as_ref().unwrap();
    assert_eq!(summaries[0].liquidations, Some(1));
    assert_eq!(summaries[1].liquidations, Some(0));
    // One wallet: 10,000 less A's lost margin, B flat at the same price.
    assert!(
        (report.final_equity - 9_900.0).abs() < 1e-9,
        "{}",
        report.final_equity
    );
}

#[test]
fn bad_universes_name_the_symbol() {
    let hourly = synth(10, 1, 3_600, 1_704_067_200, 100.0);
    let minutes = synth(10, 1, 60, 1_704_067_200, 100.0);
    let err = |series: Vec<(String, Arc<Candles>)>| match Universe::new(series) {
        Err(EngineError::InvalidConfig { field, message }) => format!("{field}: {message}"),
        other => panic!("expected an error, got {other:?}"),
    };
    let h = Arc::new(hourly);
    let m = Arc::new(minutes);
    let e = err(vec![("BTC".into(), h.clone()), ("ETH".into(), m.clone())]);
    assert!(
        e.contains("ETH has 60-second bars") && e.contains("BTC has 3600"),
        "{e}"
    );
    let e = err(vec![("BTC".into(), h.clone()), ("BTC".into(), h.clone())]);
    assert!(e.contains("BTC is named twice"), "{e}");
    let e = err(vec![("SOL".into(), Arc::new(Candles::default()))]);
    assert!(e.contains("SOL has no candles"), "{e}");
    assert!(err(vec![]).contains("at least one symbol"));
}

#[test]
fn an_action_on_a_symbol_outside_the_run_is_an_invalid_order() {
    let a = synth(20, 1, 60, 1_704_067_200, 100.0);
    let mut strategy =
        ScriptedSteps::new([(3, vec![on(2, market(Side::Buy, Quantity::Units(1.0)))])]);
    let e = run_portfolio(
        &universe(&[("A", &a)]),
        &mut strategy,
        &BacktestConfig::default(),
        &[],
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("symbol index 2, but the run has 1 symbols"),
        "{e}"
    );
}

/// One symbol in a portfolio run trades as the single-symbol engine does,
/// and its equity curve and statistics are the same to the bit.
#[test]
fn a_one_symbol_portfolio_reports_as_the_single_symbol_engine() {
    let a = synth(300, 9, 3_600, 1_704_067_200, 100.0);
    let script: Vec<(usize, Vec<Action>)> = vec![
        (5, vec![market(Side::Buy, Quantity::Equity(1.0))]),
        (80, vec![market(Side::Sell, Quantity::Equity(1.0))]),
        (200, vec![Action::ClosePosition]),
    ];
    let config = BacktestConfig::default();
    let alone = single(&a, script.clone(), &config);
    let mut strategy = ScriptedSteps::new(
        script
            .into_iter()
            .map(|(i, actions)| (i, actions.into_iter().map(|x| on(0, x)).collect())),
    );
    let report = run_portfolio(
        &universe(&[("A", &a)]),
        &mut strategy,
        &config,
        &[],
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(report.final_equity.to_bits(), alone.final_equity.to_bits());
    assert_eq!(
        report.sharpe.map(f64::to_bits),
        alone.sharpe.map(f64::to_bits)
    );
    assert_eq!(
        report.max_drawdown_pct.to_bits(),
        alone.max_drawdown_pct.to_bits()
    );
    assert_eq!(report.equity_curve, alone.equity_curve);
    assert_eq!(report.exposure_pct.to_bits(), alone.exposure_pct.to_bits());
    assert_eq!(
        report.buy_and_hold_return_pct.to_bits(),
        alone.buy_and_hold_return_pct.to_bits()
    );
}

/// The native rotation holds the symbol that rose most over its lookback,
/// and rotates into another once that one leads.
#[test]
fn the_reference_rotation_holds_the_leader() {
    fn trend(n: usize, growth: impl Fn(usize) -> f64) -> Candles {
        let close: Vec<f64> = (0..n).map(|i| 100.0 * growth(i)).collect();
        Candles {
            ts: (0..n as i64).map(|i| 1_704_067_200 + i * 3_600).collect(),
            open: close.clone(),
            high: close.iter().map(|c| c * 1.001).collect(),
            low: close.iter().map(|c| c * 0.999).collect(),
            close,
            volume: vec![1.0; n],
        }
    }
    // A leads for 100 bars, then falls while C rises.
    let a = trend(200, |i| {
        if i < 100 {
            1.0 + i as f64 * 0.01
        } else {
            2.0 - (i - 100) as f64 * 0.005
        }
    });
    let b = trend(200, |_| 1.0);
    let c = trend(200, |i| {
        if i < 100 {
            1.0
        } else {
            1.0 + (i - 100) as f64 * 0.01
        }
    });
    let mut rotation = crate::reference::MomentumRotation::new(10, 5, 1);
    let report = run_portfolio(
        &universe(&[("A", &a), ("B", &b), ("C", &c)]),
        &mut rotation,
        &BacktestConfig::default(),
        &[],
        &mut |_| {},
    )
    .unwrap();
    let symbols = report.symbols.as_ref().unwrap();
    assert!(symbols[0].num_trades >= 1, "A was held and sold");
    assert!(symbols[0].realized_pnl > 0.0);
    assert!(symbols[2].open_position.is_some(), "C is held at the end");
    assert!(symbols[1].open_position.is_none() && symbols[1].num_trades == 0);
    assert!(report.final_equity > 10_000.0);
}
