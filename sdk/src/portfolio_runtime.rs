//! Glue between the generated `portfolio` bindings and a
//! [`PortfolioStrategy`]. Used by [`crate::export_portfolio!`]; authors
//! never touch it. Plain Rust over the bindings' types, so the walk is
//! tested natively (sdk/tests/portfolio_runtime.rs).

use crate::params::{Column, Description, ParamType, ParamValue, Params};
use crate::portfolio::{
    PortfolioAccount, PortfolioContext, PortfolioStrategy, Position, StepBars, SymbolAction,
    SymbolFill,
};
// The `portfolio` interface, with its own copies of the types it shares
// with `strategy` (description, param, action, ...).
use crate::portfolio_bindings::exports::stratbox::strategy::portfolio as pwit;
use crate::types::{Action, Fill, FillReason, Market, OrderKind, Quantity, Side};

/// The window last pushed by the host: the timeline's `ts` and each
/// symbol's columns (undeclared ones empty).
#[derive(Default)]
struct Window {
    first_index: u64,
    ts: Vec<i64>,
    bars: Vec<pwit::SymbolBars>,
    len: usize,
}

pub struct PortfolioRuntime<S> {
    strategy: Option<S>,
    symbols: usize,
    window: Window,
    commission: f64,
    leverage: f64,
    slippage_bps: f64,
    market: Market,
    /// Reused per call.
    actions: Vec<SymbolAction>,
    account: PortfolioAccount,
}

impl<S: PortfolioStrategy> Default for PortfolioRuntime<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: PortfolioStrategy> PortfolioRuntime<S> {
    pub fn new() -> Self {
        Self {
            strategy: None,
            symbols: 0,
            window: Window::default(),
            commission: 0.0,
            leverage: 1.0,
            slippage_bps: 0.0,
            market: Market::Spot,
            actions: Vec::new(),
            account: PortfolioAccount::default(),
        }
    }

    pub fn init(
        &mut self,
        params: Vec<pwit::Param>,
        symbols: &[String],
        market: pwit::Market,
    ) -> Result<(), String> {
        crate::runtime::install_panic_hook();
        let params = Params::new(
            params
                .into_iter()
                .map(|p| (p.name, param_value_from_wit(p.value)))
                .collect(),
        );
        self.market = market_from_wit(market);
        self.symbols = symbols.len();
        self.strategy = Some(S::new(&params, symbols)?);
        Ok(())
    }

    pub fn push_bars(
        &mut self,
        first_index: u64,
        commission: f64,
        leverage: f64,
        slippage_bps: f64,
        ts: Vec<i64>,
        bars: Vec<pwit::SymbolBars>,
    ) {
        self.commission = commission;
        self.leverage = leverage;
        self.slippage_bps = slippage_bps;
        let len = bars
            .iter()
            .flat_map(|b| [&b.open, &b.high, &b.low, &b.close, &b.volume].map(Vec::len))
            .chain([ts.len()])
            .max()
            .unwrap_or(0);
        self.window = Window {
            first_index,
            ts,
            bars,
            len,
        };
    }

    /// Walks window steps `from..to` and returns after the first step on
    /// which the strategy acted, or at `to`.
    pub fn run(&mut self, account: pwit::Account, from: u32, to: u32) -> pwit::Step {
        self.set_account(account);
        let Some(strategy) = self.strategy.as_mut() else {
            panic!("`run` called before a successful `init`");
        };
        let window = &self.window;
        let end = (to as usize).min(window.len);
        let start = (from as usize).min(end);
        self.actions.clear();
        for i in start..end {
            let index = window.first_index + i as u64;
            let ts = window.ts.get(i).copied().unwrap_or(0);
            let step = StepBars::of_window(index, ts, &window.bars, i);
            let mut ctx = PortfolioContext::new(&self.account, i == start, &mut self.actions);
            strategy.on_step(&step, &mut ctx);
            if !self.actions.is_empty() {
                return pwit::Step {
                    consumed: (i + 1 - start) as u32,
                    actions: self
                        .actions
                        .iter()
                        .map(|a| pwit::SymbolAction {
                            // Beyond u32: the host refuses it all the same.
                            symbol: u32::try_from(a.symbol).unwrap_or(u32::MAX),
                            action: action_to_wit(a.action),
                        })
                        .collect(),
                };
            }
        }
        pwit::Step {
            consumed: (end - start) as u32,
            actions: Vec::new(),
        }
    }

    fn set_account(&mut self, a: pwit::Account) {
        let account = &mut self.account;
        account.cash = a.cash;
        account.equity = a.equity;
        account.commission = self.commission;
        account.leverage = self.leverage;
        account.slippage_bps = self.slippage_bps;
        account.market = self.market;
        account.positions.clear();
        account
            .positions
            .extend(a.positions.into_iter().map(|p| Position {
                qty: p.qty,
                entry_price: p.entry_price,
                stop_loss: p.stop_loss,
                take_profit: p.take_profit,
                open_orders: p.open_orders,
                liquidation_price: p.liquidation_price,
                funding_rate: p.funding_rate,
            }));
        // A host that sent fewer positions than symbols: the rest are flat.
        if account.positions.len() < self.symbols {
            account.positions.resize(self.symbols, Position::default());
        }
        account.fills.clear();
        account
            .fills
            .extend(a.fills.into_iter().map(|f| SymbolFill {
                symbol: f.symbol as usize,
                fill: Fill {
                    side: side_from_wit(f.side),
                    qty: f.qty,
                    price: f.price,
                    reason: fill_reason_from_wit(f.reason),
                },
            }));
    }
}

pub fn describe<S: PortfolioStrategy>() -> pwit::Description {
    description_to_wit(S::describe())
}

fn description_to_wit(d: Description) -> pwit::Description {
    pwit::Description {
        name: d.name,
        version: d.version,
        summary: d.summary,
        params: d
            .params
            .into_iter()
            .map(|p| pwit::ParamSpec {
                name: p.name,
                kind: match p.kind {
                    ParamType::Int => pwit::ParamType::Int,
                    ParamType::Float => pwit::ParamType::Float,
                    ParamType::Bool => pwit::ParamType::Bool,
                },
                default: match p.default {
                    ParamValue::Int(v) => pwit::ParamValue::Int(v),
                    ParamValue::Float(v) => pwit::ParamValue::Float(v),
                    ParamValue::Bool(v) => pwit::ParamValue::Bool(v),
                },
                min: p.min,
                max: p.max,
                step: p.step,
                help: p.help,
            })
            .collect(),
        columns: d
            .columns
            .into_iter()
            .map(|c| match c {
                Column::Ts => pwit::Column::Ts,
                Column::Open => pwit::Column::Open,
                Column::High => pwit::Column::High,
                Column::Low => pwit::Column::Low,
                Column::Close => pwit::Column::Close,
                Column::Volume => pwit::Column::Volume,
            })
            .collect(),
    }
}

fn param_value_from_wit(v: pwit::ParamValue) -> ParamValue {
    match v {
        pwit::ParamValue::Int(v) => ParamValue::Int(v),
        pwit::ParamValue::Float(v) => ParamValue::Float(v),
        pwit::ParamValue::Bool(v) => ParamValue::Bool(v),
    }
}

fn market_from_wit(m: pwit::Market) -> Market {
    match m {
        pwit::Market::Spot => Market::Spot,
        pwit::Market::LinearPerpetual => Market::LinearPerpetual,
    }
}

fn side_to_wit(s: Side) -> pwit::Side {
    match s {
        Side::Buy => pwit::Side::Buy,
        Side::Sell => pwit::Side::Sell,
    }
}

fn side_from_wit(s: pwit::Side) -> Side {
    match s {
        pwit::Side::Buy => Side::Buy,
        pwit::Side::Sell => Side::Sell,
    }
}

fn fill_reason_from_wit(r: pwit::FillReason) -> FillReason {
    match r {
        pwit::FillReason::Market => FillReason::Market,
        pwit::FillReason::Limit => FillReason::Limit,
        pwit::FillReason::Stop => FillReason::Stop,
        pwit::FillReason::StopLoss => FillReason::StopLoss,
        pwit::FillReason::TakeProfit => FillReason::TakeProfit,
        pwit::FillReason::ClosePosition => FillReason::ClosePosition,
    }
}

fn action_to_wit(a: Action) -> pwit::Action {
    match a {
        Action::Submit(order) => pwit::Action::Submit(pwit::Order {
            side: side_to_wit(order.side),
            quantity: match order.quantity {
                Quantity::Units(q) => pwit::Quantity::Units(q),
                Quantity::Equity(f) => pwit::Quantity::Equity(f),
            },
            kind: match order.kind {
                OrderKind::Market => pwit::OrderKind::Market,
                OrderKind::Limit(p) => pwit::OrderKind::Limit(p),
                OrderKind::Stop(p) => pwit::OrderKind::Stop(p),
            },
            stop_loss: order.stop_loss,
            take_profit: order.take_profit,
        }),
        Action::ClosePosition => pwit::Action::ClosePosition,
        Action::CancelOrders => pwit::Action::CancelOrders,
        Action::SetStopLoss(p) => pwit::Action::SetStopLoss(p),
        Action::SetTakeProfit(p) => pwit::Action::SetTakeProfit(p),
    }
}
