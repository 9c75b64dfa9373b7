//! The portfolio runtime's walk, natively: what `export_portfolio!` runs
//! inside the component, driven here through the same generated types the
//! host sends (no wasm).

#![allow(clippy::unwrap_used)]

use std::cell::RefCell;

use stratbox_sdk::portfolio_bindings::exports::stratbox::strategy::portfolio as pwit;
use stratbox_sdk::portfolio_runtime::PortfolioRuntime;
use stratbox_sdk::prelude::*;

/// What the strategy saw on one step: (step index, ts, closes or None,
/// fills seen, cash, qty of symbol 0).
type Seen = (u64, i64, Vec<Option<f64>>, usize, f64, f64);

thread_local! {
    static SEEN: RefCell<Vec<Seen>> = const { RefCell::new(Vec::new()) };
}

/// Buys symbol `target` on step `act_at`; records every step it sees.
struct Probe {
    act_at: u64,
    target: usize,
}

impl PortfolioStrategy for Probe {
    fn describe() -> Description {
        Description::new("probe", "0.1.0", "records what it sees")
            .param(ParamSpec::int("act_at", 3))
            .param(ParamSpec::int("target", 1))
            .columns(&[Column::Ts, Column::Close])
    }

    fn new(params: &Params, symbols: &[String]) -> Result<Self, String> {
        if symbols.is_empty() {
            return Err("no symbols".into());
        }
        Ok(Self {
            act_at: params.int("act_at")? as u64,
            target: params.int("target")? as usize,
        })
    }

    fn on_step(&mut self, step: &StepBars<'_>, ctx: &mut PortfolioContext<'_>) {
        let closes = (0..step.len()).map(|k| step.close(k)).collect();
        SEEN.with(|s| {
            s.borrow_mut().push((
                step.index,
                step.ts,
                closes,
                ctx.fills().len(),
                ctx.cash(),
                ctx.position(0),
            ))
        });
        if step.index == self.act_at {
            ctx.buy(self.target, Quantity::Equity(0.5));
            ctx.close_position(0);
        }
    }
}

fn seen() -> Vec<Seen> {
    SEEN.with(|s| std::mem::take(&mut *s.borrow_mut()))
}

fn runtime(act_at: i64, target: i64) -> PortfolioRuntime<Probe> {
    seen();
    let mut rt = PortfolioRuntime::new();
    rt.init(
        vec![
            pwit::Param {
                name: "act_at".into(),
                value: pwit::ParamValue::Int(act_at),
            },
            pwit::Param {
                name: "target".into(),
                value: pwit::ParamValue::Int(target),
            },
        ],
        &["A".to_string(), "B".to_string()],
        pwit::Market::Spot,
    )
    .unwrap();
    rt
}

fn closes(values: &[f64]) -> pwit::SymbolBars {
    pwit::SymbolBars {
        open: Vec::new(),
        high: Vec::new(),
        low: Vec::new(),
        close: values.to_vec(),
        volume: Vec::new(),
    }
}

fn account(fills: usize) -> pwit::Account {
    let position = pwit::Position {
        qty: 2.0,
        entry_price: 10.0,
        stop_loss: None,
        take_profit: None,
        open_orders: 0,
        liquidation_price: None,
        funding_rate: None,
    };
    pwit::Account {
        cash: 1_000.0,
        equity: 1_020.0,
        positions: vec![
            position,
            pwit::Position {
                qty: 0.0,
                ..position
            },
        ],
        fills: (0..fills)
            .map(|_| pwit::SymbolFill {
                symbol: 0,
                side: pwit::Side::Buy,
                qty: 2.0,
                price: 10.0,
                reason: pwit::FillReason::Market,
            })
            .collect(),
    }
}

/// Six steps from step 100 on; symbol B has no bar at window steps 1 and 4.
fn push(rt: &mut PortfolioRuntime<Probe>) {
    let nan = f64::NAN;
    rt.push_bars(
        100,
        0.0006,
        1.0,
        0.0,
        vec![10, 20, 30, 40, 50, 60],
        vec![
            closes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            closes(&[7.0, nan, 9.0, 10.0, nan, 12.0]),
        ],
    );
}

#[test]
fn the_walk_returns_after_the_first_step_with_actions() {
    let mut rt = runtime(103, 1);
    push(&mut rt);
    let step = rt.run(account(1), 1, 6);
    // Window steps 1, 2 and 3 (run steps 101..=103): the last one acted.
    assert_eq!(step.consumed, 3);
    assert_eq!(step.actions.len(), 2);
    assert_eq!(step.actions[0].symbol, 1);
    assert!(matches!(
        step.actions[0].action,
        pwit::Action::Submit(pwit::Order {
            side: pwit::Side::Buy,
            quantity: pwit::Quantity::Equity(q),
            kind: pwit::OrderKind::Market,
            stop_loss: None,
            take_profit: None,
        }) if q == 0.5
    ));
    assert_eq!(step.actions[1].symbol, 0);
    assert!(matches!(
        step.actions[1].action,
        pwit::Action::ClosePosition
    ));
    let seen = seen();
    let indices: Vec<u64> = seen.iter().map(|s| s.0).collect();
    assert_eq!(indices, [101, 102, 103]);
    let ts: Vec<i64> = seen.iter().map(|s| s.1).collect();
    assert_eq!(ts, [20, 30, 40]);
    // No bar for B at window step 1: None, never a NaN bar.
    assert_eq!(seen[0].2, [Some(2.0), None]);
    assert_eq!(seen[1].2, [Some(3.0), Some(9.0)]);
    // The fills show on the first step of the call only; the account on all.
    let fills: Vec<usize> = seen.iter().map(|s| s.3).collect();
    assert_eq!(fills, [1, 0, 0]);
    assert!(seen.iter().all(|s| s.4 == 1_000.0 && s.5 == 2.0));
}

#[test]
fn a_range_without_actions_is_walked_to_its_end() {
    let mut rt = runtime(1_000, 1);
    push(&mut rt);
    let step = rt.run(account(0), 2, 5);
    assert_eq!(step.consumed, 3);
    assert!(step.actions.is_empty());
    let walked = seen();
    assert_eq!(
        walked.iter().map(|s| s.0).collect::<Vec<_>>(),
        [102, 103, 104]
    );
    assert_eq!(walked[2].2, [Some(5.0), None]);
    // The next call goes on where the last stopped, over the same window.
    let step = rt.run(account(0), 5, 6);
    assert_eq!(step.consumed, 1);
    assert_eq!(seen()[0].0, 105);
}

#[test]
fn an_index_beyond_the_universe_crosses_as_given() {
    // The host, not the SDK, refuses it (as an invalid order).
    let mut rt = runtime(100, 7);
    push(&mut rt);
    let step = rt.run(account(0), 0, 6);
    assert_eq!(step.consumed, 1);
    assert_eq!(step.actions[0].symbol, 7);
}

#[test]
fn a_range_past_the_window_is_cut_at_its_end() {
    let mut rt = runtime(1_000, 1);
    push(&mut rt);
    let step = rt.run(account(0), 4, 50);
    assert_eq!(step.consumed, 2);
}

#[test]
fn undeclared_columns_read_as_nan_and_ts_as_zero() {
    let mut rt = runtime(1_000, 1);
    rt.push_bars(
        0,
        0.0,
        1.0,
        0.0,
        Vec::new(),
        vec![closes(&[1.0, 2.0]), closes(&[3.0, 4.0])],
    );
    rt.run(account(0), 0, 2);
    let seen = seen();
    assert_eq!(seen.iter().map(|s| s.1).collect::<Vec<_>>(), [0, 0]);
    assert_eq!(seen[1].2, [Some(2.0), Some(4.0)]);
}

#[test]
fn init_errors_come_back_as_the_strategy_wrote_them() {
    let mut rt: PortfolioRuntime<Probe> = PortfolioRuntime::new();
    let err = rt.init(Vec::new(), &[], pwit::Market::Spot).unwrap_err();
    assert_eq!(err, "no symbols");
}
