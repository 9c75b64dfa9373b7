//! Portfolio components in the sandbox (contract 0.3.0's `portfolio`
//! interface): loaded as their kind (importing only the log), refused as
//! the other, and run through `run_portfolio` to the same report, to the
//! bit, as native Rust of the same logic (pairs-spread's copy here,
//! momentum-rotation's the engine's reference); a guest ordering a symbol
//! beyond its universe ends the run as an invalid order; the single-symbol
//! limits hold (docs/conventions/contract.md, docs/sandbox.md).

use std::sync::Arc;

use serde_json::Value;
use stratbox_engine::candles::{self, Candles};
use stratbox_engine::portfolio::{
    run_portfolio, AccountView, PortfolioStrategy, SymbolAction, Universe,
};
use stratbox_engine::reference::MomentumRotation;
use stratbox_engine::{
    Action, BacktestConfig, Column, EngineError, Market, Order, OrderKind, ParamInput, Params,
    Quantity, Side, StrategyError,
};
use stratbox_sandbox::{
    CancelToken, ContractVersion, Plugin, RunError, RunLimits, Sandbox, SandboxConfig, StrategyKind,
};

use crate::support::{plugin_bytes, scratch};

fn sandbox_in(dir: &std::path::Path) -> Sandbox {
    Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..SandboxConfig::default()
    })
    .unwrap()
}

/// `symbols` seeded hourly series of `bars` bars; symbol k (k odd) misses
/// every 7th bar from bar 100 on, so the timeline has steps where some
/// symbols have no bar.
fn universe(symbols: usize, bars: usize, seed: u64) -> Universe {
    let series = (0..symbols)
        .map(|k| {
            let full = candles::synth(bars, seed + k as u64, 3_600, 1_704_067_200, 100.0);
            let mut candles = Candles::with_capacity(bars);
            for i in 0..full.len() {
                if k % 2 == 1 && i >= 100 && i % 7 == 0 {
                    continue;
                }
                candles.push(
                    full.ts[i],
                    full.open[i],
                    full.high[i],
                    full.low[i],
                    full.close[i],
                    full.volume[i],
                );
            }
            (format!("S{k}USDT"), Arc::new(candles))
        })
        .collect();
    Universe::new(series).unwrap()
}

fn params(plugin: &Plugin, set: &[(&str, &str)]) -> Params {
    let inputs = set
        .iter()
        .map(|(name, value)| (name.to_string(), ParamInput::Text(value.to_string())))
        .collect();
    Params::validate(&plugin.description.params, &inputs).unwrap()
}

fn start(
    sandbox: &Sandbox,
    plugin: &Plugin,
    set: &[(&str, &str)],
    universe: &Universe,
    market: Market,
    limits: RunLimits,
) -> Result<stratbox_sandbox::WasmPortfolioStrategy, RunError> {
    sandbox.instantiate_portfolio(
        plugin,
        &params(plugin, set),
        universe,
        market,
        limits,
        CancelToken::default(),
    )
}

fn run(
    universe: &Universe,
    strategy: &mut dyn PortfolioStrategy,
    config: &BacktestConfig,
) -> Result<Value, EngineError> {
    let report = run_portfolio(universe, strategy, config, &[], &mut |_| {})?;
    Ok(serde_json::to_value(&report).unwrap())
}

/// Every field but the fuel (other code) is the same, floats to the bit.
fn assert_same_report(wasm: &Value, native: &Value) {
    for (key, value) in wasm.as_object().unwrap() {
        if key == "fuel_used" {
            continue;
        }
        assert_eq!(value, &native[key], "field {key} differs");
    }
    assert_eq!(
        wasm["final_equity"].as_f64().unwrap().to_bits(),
        native["final_equity"].as_f64().unwrap().to_bits()
    );
}

fn market_order(side: Side, fraction: f64) -> Action {
    Action::Submit(Order {
        side,
        quantity: Quantity::Equity(fraction),
        kind: OrderKind::Market,
        stop_loss: None,
        take_profit: None,
    })
}

/// plugins/pairs-spread, natively, expression for expression.
struct NativePairs {
    lookback: usize,
    entry_z: f64,
    exit_z: f64,
    spreads: Vec<f64>,
    next: usize,
    filled: bool,
}

impl NativePairs {
    fn new(lookback: usize, entry_z: f64, exit_z: f64) -> Self {
        Self {
            lookback,
            entry_z,
            exit_z,
            spreads: Vec::new(),
            next: 0,
            filled: false,
        }
    }

    fn step(&mut self, a: f64, b: f64, qty: [f64; 2], actions: &mut Vec<SymbolAction>) {
        let spread = a / b;
        if self.filled {
            self.spreads[self.next] = spread;
        } else {
            self.spreads.push(spread);
        }
        self.next += 1;
        if self.next == self.lookback {
            self.next = 0;
            self.filled = true;
        }
        if !self.filled {
            return;
        }
        let n = self.lookback as f64;
        let ordered: Vec<f64> = self.spreads[self.next..]
            .iter()
            .chain(&self.spreads[..self.next])
            .copied()
            .collect();
        let mut total = 0.0;
        for s in &ordered {
            total += s;
        }
        let mean = total / n;
        let mut var = 0.0;
        for s in &ordered {
            let d = s - mean;
            var += d * d;
        }
        let std = (var / n).sqrt();
        if std.is_nan() || std <= 0.0 {
            return;
        }
        let z = (spread - mean) / std;
        // Exit first, then entry (the Python and JavaScript twins' order).
        if z.abs() < self.exit_z {
            for (symbol, q) in qty.into_iter().enumerate() {
                if q != 0.0 {
                    actions.push(SymbolAction {
                        symbol,
                        action: Action::ClosePosition,
                    });
                }
            }
            return;
        }
        let target: [Side; 2] = if z > self.entry_z && !(qty[0] < 0.0 && qty[1] > 0.0) {
            [Side::Sell, Side::Buy]
        } else if z < -self.entry_z && !(qty[0] > 0.0 && qty[1] < 0.0) {
            [Side::Buy, Side::Sell]
        } else {
            return;
        };
        for (symbol, side) in target.into_iter().enumerate() {
            let q = qty[symbol];
            let there = match side {
                Side::Buy => q > 0.0,
                Side::Sell => q < 0.0,
            };
            if !there {
                actions.push(SymbolAction {
                    symbol,
                    action: market_order(side, 0.5),
                });
            }
        }
    }
}

impl PortfolioStrategy for NativePairs {
    fn on_steps(
        &mut self,
        universe: &Universe,
        start: usize,
        end: usize,
        account: &AccountView<'_>,
        actions: &mut Vec<SymbolAction>,
    ) -> Result<usize, StrategyError> {
        let qty = [account.positions[0].qty, account.positions[1].qty];
        for i in start..end {
            let (a, b) = (universe.symbols[0].close[i], universe.symbols[1].close[i]);
            if a.is_nan() || b.is_nan() {
                continue;
            }
            self.step(a, b, qty, actions);
            if !actions.is_empty() {
                return Ok(i + 1 - start);
            }
        }
        Ok(end - start)
    }
}

#[test]
fn portfolio_components_load_as_their_kind_and_are_refused_as_the_other() {
    let dir = scratch("portfolio-kind");
    let sandbox = sandbox_in(&dir);
    for name in ["pairs-spread", "momentum-rotation"] {
        let loaded = sandbox.load(&plugin_bytes(name)).unwrap();
        assert_eq!(loaded.kind, StrategyKind::Portfolio, "{name}");
        assert!(loaded.is_portfolio());
        assert_eq!(loaded.contract_version, ContractVersion::V0_3_0);
        assert_eq!(
            loaded.exports,
            ["stratbox:strategy/portfolio@0.3.0".to_string()]
        );
        // The log only: the `portfolio` interface has its own types.
        assert_eq!(loaded.imports, ["stratbox:strategy/log@0.3.0".to_string()]);
        assert_eq!(loaded.description.columns, [Column::Close]);
    }
    let pairs = sandbox.load(&plugin_bytes("pairs-spread")).unwrap();
    let names: Vec<&str> = pairs
        .description
        .params
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    assert_eq!(names, ["lookback", "entry_z", "exit_z"]);

    let single = sandbox.load(&plugin_bytes("ema-crossover")).unwrap();
    assert_eq!(single.kind, StrategyKind::Single);
    assert!(!single.is_portfolio());
    let two = universe(2, 300, 40);
    let err = start(
        &sandbox,
        &single,
        &[],
        &two,
        Market::Spot,
        RunLimits::default(),
    )
    .err()
    .unwrap();
    assert_eq!(err.code(), "strategy_error");
    assert!(err.to_string().contains("trades one symbol"), "{err}");
    let err = sandbox
        .instantiate(
            &pairs,
            &params(&pairs, &[]),
            300,
            RunLimits::default(),
            CancelToken::default(),
        )
        .err()
        .unwrap();
    assert_eq!(err.code(), "strategy_error");
    assert!(err.to_string().contains("several symbols"), "{err}");

    // The strategy's own `new` refuses a universe it cannot trade.
    let one = universe(1, 300, 40);
    let err = start(
        &sandbox,
        &pairs,
        &[],
        &one,
        Market::Spot,
        RunLimits::default(),
    )
    .err()
    .unwrap();
    assert_eq!(
        err,
        RunError::InitFailed {
            message: "pairs spread needs two symbols, got 1".into()
        }
    );
}

#[test]
fn pairs_spread_in_the_sandbox_reports_as_its_native_twin() {
    let dir = scratch("portfolio-pairs");
    let sandbox = sandbox_in(&dir);
    let pairs = sandbox.load(&plugin_bytes("pairs-spread")).unwrap();
    // 9,000 steps of two symbols: three windows of 4,096 steps.
    let universe = universe(2, 9_000, 41);
    for (set, lookback, entry_z, exit_z) in [
        (vec![], 48, 2.0, 0.5),
        (
            vec![("lookback", "20"), ("entry_z", "1.2"), ("exit_z", "0.3")],
            20,
            1.2,
            0.3,
        ),
    ] {
        let config = BacktestConfig::default();
        let mut wasm = start(
            &sandbox,
            &pairs,
            &set,
            &universe,
            Market::Spot,
            RunLimits::default(),
        )
        .unwrap();
        let guest = run(&universe, &mut wasm, &config).unwrap();
        let mut native = NativePairs::new(lookback, entry_z, exit_z);
        let twin = run(&universe, &mut native, &config).unwrap();
        assert!(
            guest["num_trades"].as_u64().unwrap() > 40,
            "too few trades to compare: {}",
            guest["num_trades"]
        );
        assert!(guest["fuel_used"].as_u64().unwrap() > 0);
        assert_same_report(&guest, &twin);
    }
}

#[test]
fn momentum_rotation_in_the_sandbox_reports_as_the_engine_reference_spot_and_perpetual() {
    let dir = scratch("portfolio-momentum");
    let sandbox = sandbox_in(&dir);
    let rotation = sandbox.load(&plugin_bytes("momentum-rotation")).unwrap();
    // Five symbols (two with gaps) over 6,000 steps: windows of 1,638.
    let universe = universe(5, 6_000, 42);
    let set = [("lookback", "48"), ("rebalance", "12"), ("top_k", "2")];
    let spot = BacktestConfig::default();
    let perpetual = BacktestConfig {
        market: Market::LinearPerpetual,
        leverage: 2.0,
        ..BacktestConfig::default()
    };
    for config in [spot, perpetual] {
        let mut wasm = start(
            &sandbox,
            &rotation,
            &set,
            &universe,
            config.market,
            RunLimits::default(),
        )
        .unwrap();
        let guest = run(&universe, &mut wasm, &config).unwrap();
        let mut native = MomentumRotation::new(48, 12, 2);
        let twin = run(&universe, &mut native, &config).unwrap();
        assert!(
            guest["num_trades"].as_u64().unwrap() > 100,
            "too few trades to compare: {}",
            guest["num_trades"]
        );
        assert_same_report(&guest, &twin);
    }
}

#[test]
fn a_symbol_index_beyond_the_universe_is_an_invalid_order() {
    let dir = scratch("portfolio-bad-symbol");
    let sandbox = sandbox_in(&dir);
    let hostile = sandbox
        .load(&plugin_bytes("hostile/portfolio-bad-symbol"))
        .unwrap();
    assert!(hostile.is_portfolio());
    let universe = universe(2, 200, 43);
    for (offset, index) in [("0", 2_u64), ("4000000000", 4_000_000_002)] {
        let mut strategy = start(
            &sandbox,
            &hostile,
            &[("offset", offset), ("at", "5")],
            &universe,
            Market::Spot,
            RunLimits::default(),
        )
        .unwrap();
        match run(&universe, &mut strategy, &BacktestConfig::default()) {
            Err(EngineError::InvalidOrder { bar, message, .. }) => {
                assert_eq!(bar, 5);
                assert_eq!(
                    message,
                    format!("symbol index {index}, but the run has 2 symbols")
                );
            }
            other => panic!("expected an invalid order, got {other:?}"),
        }
    }
}

#[test]
fn a_portfolio_run_stops_at_its_fuel_budget() {
    let dir = scratch("portfolio-fuel");
    let sandbox = sandbox_in(&dir);
    let rotation = sandbox.load(&plugin_bytes("momentum-rotation")).unwrap();
    let universe = universe(5, 3_000, 44);
    let mut strategy = start(
        &sandbox,
        &rotation,
        &[],
        &universe,
        Market::Spot,
        RunLimits {
            fuel: Some(200_000),
            ..RunLimits::default()
        },
    )
    .unwrap();
    let err = run(&universe, &mut strategy, &BacktestConfig::default()).unwrap_err();
    let EngineError::Strategy(inner) = err else {
        panic!("expected a strategy error, got {err:?}");
    };
    assert_eq!(
        inner.downcast_ref::<RunError>(),
        Some(&RunError::FuelExhausted { budget: 200_000 })
    );
}
