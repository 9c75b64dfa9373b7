//! Glue between the generated component bindings and a [`Strategy`].
//! Used by [`crate::export_strategy!`]; authors never touch it.

use crate::bindings::exports::stratbox::strategy::strategy as wit;
use crate::context::Context;
use crate::fills;
use crate::params::{Column, Description, ParamType, ParamValue, Params};
use crate::types::{Action, Bar, Fill, FillReason, Market, OrderKind, Portfolio, Quantity, Side};
use crate::Strategy;

/// The bar window last pushed by the host, kept as columns (undeclared
/// columns are empty).
#[derive(Default)]
struct Window {
    first_index: u64,
    ts: Vec<i64>,
    open: Vec<f64>,
    high: Vec<f64>,
    low: Vec<f64>,
    close: Vec<f64>,
    volume: Vec<f64>,
}

impl Window {
    fn len(&self) -> usize {
        [
            self.ts.len(),
            self.open.len(),
            self.high.len(),
            self.low.len(),
            self.close.len(),
            self.volume.len(),
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }
}

pub struct Runtime<S> {
    strategy: Option<S>,
    window: Window,
    /// Stand-ins for columns the host did not send, kept across windows.
    nan: Vec<f64>,
    zero: Vec<i64>,
    commission: f64,
    leverage: f64,
    slippage_bps: f64,
    /// The last `set-market-state` (spot with neither value until then).
    market: Market,
    liquidation_price: Option<f64>,
    funding_rate: Option<f64>,
    /// Market orders filled in the guest during the last `run`, and the
    /// account assumed after each (see `fills`).
    planned: Vec<wit::PlannedAction>,
    assumed: Vec<wit::Assumed>,
    /// Actions of the last bar, handed out first by `run`, then by
    /// `next_action` (oldest first).
    actions: Vec<Action>,
    next_action: usize,
}

impl<S: Strategy> Default for Runtime<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Strategy> Runtime<S> {
    pub fn new() -> Self {
        Self {
            strategy: None,
            window: Window::default(),
            nan: Vec::new(),
            zero: Vec::new(),
            commission: 0.0,
            leverage: 1.0,
            slippage_bps: 0.0,
            market: Market::Spot,
            liquidation_price: None,
            funding_rate: None,
            planned: Vec::new(),
            assumed: Vec::new(),
            actions: Vec::new(),
            next_action: 0,
        }
    }

    pub fn init(&mut self, params: Vec<wit::Param>) -> Result<(), String> {
        install_panic_hook();
        let params = Params::new(
            params
                .into_iter()
                .map(|p| (p.name, param_value_from_wit(p.value)))
                .collect(),
        );
        self.strategy = Some(S::new(&params)?);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub fn push_bars(
        &mut self,
        first_index: u64,
        commission: f64,
        leverage: f64,
        slippage_bps: f64,
        ts: Vec<i64>,
        open: Vec<f64>,
        high: Vec<f64>,
        low: Vec<f64>,
        close: Vec<f64>,
        volume: Vec<f64>,
    ) {
        self.commission = commission;
        self.leverage = leverage;
        self.slippage_bps = slippage_bps;
        self.window = Window {
            first_index,
            ts,
            open,
            high,
            low,
            close,
            volume,
        };
        let len = self.window.len();
        if self.nan.len() < len {
            self.nan.resize(len, f64::NAN);
            self.zero.resize(len, 0);
        }
    }

    pub fn set_market_state(&mut self, state: wit::MarketState) {
        self.market = match state.market {
            wit::Market::Spot => Market::Spot,
            wit::Market::LinearPerpetual => Market::LinearPerpetual,
        };
        self.liquidation_price = state.liquidation_price;
        self.funding_rate = state.funding_rate;
    }

    pub fn run(&mut self, portfolio: wit::Portfolio, from: u32, to: u32) -> wit::Step {
        let mut portfolio = portfolio_from_wit(portfolio, self.commission, self.leverage);
        portfolio.market = self.market;
        portfolio.liquidation_price = self.liquidation_price;
        portfolio.funding_rate = self.funding_rate;
        // The fill mirror knows spot only: a perpetual's fills (fees,
        // margin, liquidation) are the host's alone, so there every bar
        // with actions goes back to the host.
        let self_fill = self.market == Market::Spot;
        let Some(strategy) = self.strategy.as_mut() else {
            panic!("`run` called before a successful `init`");
        };
        let window = &self.window;
        let len = window.len();
        let nan = &self.nan[..len];
        let floats = |column| or_nan(column, nan);
        let ts_column = if window.ts.is_empty() {
            &self.zero[..len]
        } else {
            &window.ts[..]
        };
        let (opens, high, low, close, volume) = (
            floats(&window.open),
            floats(&window.high),
            floats(&window.low),
            floats(&window.close),
            floats(&window.volume),
        );
        let end = (to as usize).min(len);
        let start = (from as usize).min(end);
        self.actions.clear();
        self.next_action = 0;
        self.planned.clear();
        self.assumed.clear();
        let columns = Columns {
            first_index: window.first_index,
            ts: ts_column,
            open: opens,
            high,
            low,
            close,
            volume,
        };
        // Walk segments: a segment ends at a bar with actions. When those
        // are simple market orders the guest fills them itself and the next
        // segment starts at the next bar (see `fills`); otherwise return.
        let mut segment = start;
        while let Some(i) = walk(
            strategy,
            &portfolio,
            &columns,
            segment,
            end,
            &mut self.actions,
        ) {
            if self_fill
                && i + 1 < end
                && plan_market_fills(
                    &mut portfolio,
                    &mut self.actions,
                    &mut self.planned,
                    &mut self.assumed,
                    i,
                    opens[i + 1],
                    self.slippage_bps,
                )
            {
                segment = i + 1;
                continue;
            }
            self.next_action = 1;
            return wit::Step {
                consumed: (i + 1 - start) as u32,
                action: Some(action_to_wit(self.actions[0])),
                more: (self.actions.len() - 1) as u32,
                planned: self.planned.len() as u32,
            };
        }
        wit::Step {
            consumed: (end - start) as u32,
            action: None,
            more: 0,
            planned: self.planned.len() as u32,
        }
    }

    pub fn take_planned(&mut self) -> wit::Plan {
        wit::Plan {
            actions: std::mem::take(&mut self.planned),
            assumed: std::mem::take(&mut self.assumed),
        }
    }
}

impl<S: Strategy> Runtime<S> {
    pub fn next_action(&mut self) -> Option<wit::Action> {
        let action = self.actions.get(self.next_action).copied()?;
        self.next_action += 1;
        Some(action_to_wit(action))
    }
}

/// The window's columns, with stand-ins for the undeclared ones.
struct Columns<'a> {
    first_index: u64,
    ts: &'a [i64],
    open: &'a [f64],
    high: &'a [f64],
    low: &'a [f64],
    close: &'a [f64],
    volume: &'a [f64],
}

/// Calls `on_bar` for bars `start..end` with a fixed account; returns the
/// first bar on which the strategy acted. The fills in `portfolio` show on
/// the first bar only. Inlined so the loop specialises per strategy.
#[inline(always)]
fn walk<S: Strategy>(
    strategy: &mut S,
    portfolio: &Portfolio,
    c: &Columns<'_>,
    start: usize,
    end: usize,
    actions: &mut Vec<Action>,
) -> Option<usize> {
    // Zipped slices: no bounds check per column per bar.
    let bars = c.ts[start..end]
        .iter()
        .zip(&c.open[start..end])
        .zip(&c.high[start..end])
        .zip(&c.low[start..end])
        .zip(&c.close[start..end])
        .zip(&c.volume[start..end]);
    for (offset, (((((&ts, &open), &high), &low), &close), &volume)) in bars.enumerate() {
        let bar = Bar {
            index: c.first_index + (start + offset) as u64,
            ts,
            open,
            high,
            low,
            close,
            volume,
        };
        let mut ctx = Context::new(portfolio, close, offset == 0, actions);
        strategy.on_bar(&bar, &mut ctx);
        if !actions.is_empty() {
            return Some(start + offset);
        }
    }
    None
}

/// Fills the bar's actions in the guest when they are simple market orders
/// (see `fills`), recording them for `take-planned`. Kept out of line so
/// the per-bar loop stays small: few bars have actions.
#[cold]
#[inline(never)]
fn plan_market_fills(
    portfolio: &mut Portfolio,
    actions: &mut Vec<Action>,
    planned: &mut Vec<wit::PlannedAction>,
    assumed: &mut Vec<wit::Assumed>,
    bar: usize,
    next_open: f64,
    slippage_bps: f64,
) -> bool {
    if !fills::predictable(portfolio, actions, next_open) {
        return false;
    }
    fills::fill_market(portfolio, actions, next_open, slippage_bps);
    planned.extend(actions.drain(..).map(|action| wit::PlannedAction {
        bar: bar as u32,
        action: action_to_wit(action),
    }));
    assumed.push(wit::Assumed {
        bar: (bar + 1) as u32,
        cash: portfolio.cash,
        position: portfolio.position,
        entry_price: portfolio.entry_price,
    });
    true
}

/// A column the host sent, or NaNs in its place.
fn or_nan<'a>(column: &'a [f64], nan: &'a [f64]) -> &'a [f64] {
    if column.is_empty() {
        nan
    } else {
        column
    }
}

/// Panics abort a wasm32-unknown-unknown guest with a bare `unreachable`
/// trap; sending the message through the log first lets the host name it.
pub(crate) fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            crate::log::log(crate::log::Level::Error, &format!("panic: {info}"));
        }));
    });
}

pub fn describe<S: Strategy>() -> wit::Description {
    description_to_wit(S::describe())
}

fn description_to_wit(d: Description) -> wit::Description {
    wit::Description {
        name: d.name,
        version: d.version,
        summary: d.summary,
        params: d
            .params
            .into_iter()
            .map(|p| wit::ParamSpec {
                name: p.name,
                kind: match p.kind {
                    ParamType::Int => wit::ParamType::Int,
                    ParamType::Float => wit::ParamType::Float,
                    ParamType::Bool => wit::ParamType::Bool,
                },
                default: param_value_to_wit(p.default),
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
                Column::Ts => wit::Column::Ts,
                Column::Open => wit::Column::Open,
                Column::High => wit::Column::High,
                Column::Low => wit::Column::Low,
                Column::Close => wit::Column::Close,
                Column::Volume => wit::Column::Volume,
            })
            .collect(),
    }
}

fn param_value_to_wit(v: ParamValue) -> wit::ParamValue {
    match v {
        ParamValue::Int(v) => wit::ParamValue::Int(v),
        ParamValue::Float(v) => wit::ParamValue::Float(v),
        ParamValue::Bool(v) => wit::ParamValue::Bool(v),
    }
}

fn param_value_from_wit(v: wit::ParamValue) -> ParamValue {
    match v {
        wit::ParamValue::Int(v) => ParamValue::Int(v),
        wit::ParamValue::Float(v) => ParamValue::Float(v),
        wit::ParamValue::Bool(v) => ParamValue::Bool(v),
    }
}

fn side_to_wit(s: Side) -> wit::Side {
    match s {
        Side::Buy => wit::Side::Buy,
        Side::Sell => wit::Side::Sell,
    }
}

fn side_from_wit(s: wit::Side) -> Side {
    match s {
        wit::Side::Buy => Side::Buy,
        wit::Side::Sell => Side::Sell,
    }
}

fn action_to_wit(a: Action) -> wit::Action {
    match a {
        Action::Submit(order) => wit::Action::Submit(wit::Order {
            side: side_to_wit(order.side),
            quantity: match order.quantity {
                Quantity::Units(q) => wit::Quantity::Units(q),
                Quantity::Equity(f) => wit::Quantity::Equity(f),
            },
            kind: match order.kind {
                OrderKind::Market => wit::OrderKind::Market,
                OrderKind::Limit(p) => wit::OrderKind::Limit(p),
                OrderKind::Stop(p) => wit::OrderKind::Stop(p),
            },
            stop_loss: order.stop_loss,
            take_profit: order.take_profit,
        }),
        Action::ClosePosition => wit::Action::ClosePosition,
        Action::CancelOrders => wit::Action::CancelOrders,
        Action::SetStopLoss(p) => wit::Action::SetStopLoss(p),
        Action::SetTakeProfit(p) => wit::Action::SetTakeProfit(p),
    }
}

fn portfolio_from_wit(p: wit::Portfolio, commission: f64, leverage: f64) -> Portfolio {
    Portfolio {
        cash: p.cash,
        position: p.position,
        entry_price: p.entry_price,
        stop_loss: p.stop_loss,
        take_profit: p.take_profit,
        open_orders: p.open_orders,
        commission,
        leverage,
        fill_count: p.fill_count,
        market: Market::Spot,
        liquidation_price: None,
        funding_rate: None,
        last_fill: p.last_fill.map(|f| Fill {
            side: side_from_wit(f.side),
            qty: f.qty,
            price: f.price,
            reason: match f.reason {
                wit::FillReason::Market => FillReason::Market,
                wit::FillReason::Limit => FillReason::Limit,
                wit::FillReason::Stop => FillReason::Stop,
                wit::FillReason::StopLoss => FillReason::StopLoss,
                wit::FillReason::TakeProfit => FillReason::TakeProfit,
                wit::FillReason::ClosePosition => FillReason::ClosePosition,
            },
        }),
    }
}
