//! Strategies over several symbols on one timeline (contract 0.3.0's
//! `portfolio` interface; docs/conventions/engine.md, "Several symbols").
//!
//! The host lays every symbol's bars on one timeline (the union of their
//! bar times) and calls [`PortfolioStrategy::on_step`] once per step with
//! each symbol's bar there, `None` where a symbol has none (nothing is
//! filled forward). Orders name a symbol by its index in the universe
//! (the order of `new`'s `symbols`); the host fills every order, and the
//! SDK returns to it after each step with actions, so a strategy always
//! sees its own fills.

use crate::params::{Description, Params};
use crate::portfolio_bindings::exports::stratbox::strategy::portfolio as pwit;
use crate::types::{Action, Bar, Fill, Market, Order, OrderKind, Quantity, Side};

/// What an author of a strategy over several symbols implements. One value
/// lives for a whole run.
pub trait PortfolioStrategy: Sized + 'static {
    /// Name, version, summary, parameter schema and the columns it reads.
    fn describe() -> Description;
    /// Builds the strategy from checked params and the universe: every
    /// symbol index refers to `symbols`. An `Err` ends the run with that
    /// message (for instance: a pairs strategy given three symbols).
    fn new(params: &Params, symbols: &[String]) -> Result<Self, String>;
    /// Called for every step of the timeline, oldest first, after the
    /// fills of that step.
    fn on_step(&mut self, step: &StepBars<'_>, ctx: &mut PortfolioContext<'_>);
}

/// Every symbol's bar at one step of the timeline. Read on demand from the
/// window's columns: a strategy that looks at one close per symbol pays
/// for one load each, not for building every bar (in the rotation bench,
/// building them all was most of the guest's time per step).
#[derive(Debug, Clone, Copy)]
pub struct StepBars<'a> {
    /// Index of the step in the whole run (0 is the first step).
    pub index: u64,
    /// The step's time, unix seconds UTC (0 unless `ts` is declared).
    pub ts: i64,
    source: Source<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Source<'a> {
    /// Bars already made (the native harness).
    Bars(&'a [Option<Bar>]),
    /// Entry `i` of the window's columns (the component).
    Window {
        columns: &'a [pwit::SymbolBars],
        i: usize,
    },
}

impl<'a> StepBars<'a> {
    /// One entry per symbol, in the universe's order.
    pub fn new(index: u64, ts: i64, bars: &'a [Option<Bar>]) -> Self {
        Self {
            index,
            ts,
            source: Source::Bars(bars),
        }
    }

    /// Entry `i` of a window the host pushed.
    pub(crate) fn of_window(
        index: u64,
        ts: i64,
        columns: &'a [pwit::SymbolBars],
        i: usize,
    ) -> Self {
        Self {
            index,
            ts,
            source: Source::Window { columns, i },
        }
    }

    /// Symbol `symbol`'s bar at this step; `None` where it has none (or
    /// beyond the universe).
    #[inline]
    pub fn bar(&self, symbol: usize) -> Option<Bar> {
        match self.source {
            Source::Bars(bars) => bars.get(symbol).copied().flatten(),
            Source::Window { columns, i } => bar_at(columns.get(symbol)?, i, self.index, self.ts),
        }
    }

    /// Its close, where it has a bar.
    #[inline]
    pub fn close(&self, symbol: usize) -> Option<f64> {
        match self.source {
            Source::Window { columns, i } => {
                let close = &columns.get(symbol)?.close;
                if close.is_empty() {
                    return self.bar(symbol).map(|b| b.close);
                }
                // The host sends NaN in every column where there is no bar.
                let value = close.get(i).copied().unwrap_or(f64::NAN);
                (!value.is_nan()).then_some(value)
            }
            Source::Bars(_) => self.bar(symbol).map(|b| b.close),
        }
    }

    /// Symbols in the universe.
    #[inline]
    pub fn len(&self) -> usize {
        match self.source {
            Source::Bars(bars) => bars.len(),
            Source::Window { columns, .. } => columns.len(),
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The symbols with a bar at this step, with their index.
    pub fn present(&self) -> impl Iterator<Item = (usize, Bar)> + 'a {
        let step = *self;
        (0..self.len()).filter_map(move |k| step.bar(k).map(|b| (k, b)))
    }
}

/// A symbol's bar at window entry `i`, if it has one there. The host sends
/// NaN in every column where a symbol has no bar, so the first column it
/// sent (close first: the one most strategies declare) tells; a strategy
/// that declares no price column sees no bars.
#[inline]
fn bar_at(c: &pwit::SymbolBars, i: usize, index: u64, ts: i64) -> Option<Bar> {
    let value = |column: &[f64]| column.get(i).copied().unwrap_or(f64::NAN);
    let witness = [&c.close, &c.open, &c.high, &c.low, &c.volume]
        .into_iter()
        .find(|column| !column.is_empty())?;
    if value(witness).is_nan() {
        return None;
    }
    Some(Bar {
        index,
        ts,
        open: value(&c.open),
        high: value(&c.high),
        low: value(&c.low),
        close: value(&c.close),
        volume: value(&c.volume),
    })
}

/// One symbol's position before the first step of a host call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Position {
    /// Signed quantity: > 0 long, < 0 short, 0 flat.
    pub qty: f64,
    pub entry_price: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    /// Resting limit and stop entries of this symbol.
    pub open_orders: u32,
    /// Perpetuals: the open position's liquidation price.
    pub liquidation_price: Option<f64>,
    /// Perpetuals: the latest funding rate known for this symbol.
    pub funding_rate: Option<f64>,
}

/// A fill of one symbol, on the first step of a host call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SymbolFill {
    pub symbol: usize,
    pub fill: Fill,
}

/// An action on one symbol (an index into the universe).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SymbolAction {
    pub symbol: usize,
    pub action: Action,
}

/// The one account, as the host hands it over before the first step of a
/// call. It cannot change within a call: the SDK returns to the host after
/// every step with actions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PortfolioAccount {
    /// Spot: the cash every position shares. Perpetuals: the wallet.
    pub cash: f64,
    /// Cash plus every position marked at its symbol's last close before
    /// the call (perpetuals: margins plus unrealised PnL).
    pub equity: f64,
    /// One per symbol, in the universe's order.
    pub positions: Vec<Position>,
    /// Fills on the first step of the call.
    pub fills: Vec<SymbolFill>,
    pub commission: f64,
    pub leverage: f64,
    pub slippage_bps: f64,
    pub market: Market,
}

/// The strategy's view of the account on one step, and where it places
/// orders on symbols.
pub struct PortfolioContext<'a> {
    account: &'a PortfolioAccount,
    first_step_of_call: bool,
    actions: &'a mut Vec<SymbolAction>,
}

impl<'a> PortfolioContext<'a> {
    #[doc(hidden)]
    #[inline]
    pub fn new(
        account: &'a PortfolioAccount,
        first_step_of_call: bool,
        actions: &'a mut Vec<SymbolAction>,
    ) -> Self {
        Self {
            account,
            first_step_of_call,
            actions,
        }
    }

    /// Spot: the shared cash. Perpetuals: the wallet (not the margins).
    #[inline]
    pub fn cash(&self) -> f64 {
        self.account.cash
    }
    /// Cash plus every position marked at its symbol's last close before
    /// the host call (constant within a call).
    #[inline]
    pub fn equity(&self) -> f64 {
        self.account.equity
    }
    /// Every symbol's position, in the universe's order.
    #[inline]
    pub fn positions(&self) -> &[Position] {
        &self.account.positions
    }
    /// Symbol `symbol`'s position (flat beyond the universe).
    #[inline]
    pub fn position_of(&self, symbol: usize) -> Position {
        self.account
            .positions
            .get(symbol)
            .copied()
            .unwrap_or_default()
    }
    /// Signed quantity of `symbol`: > 0 long, < 0 short, 0 flat.
    #[inline]
    pub fn position(&self, symbol: usize) -> f64 {
        self.position_of(symbol).qty
    }
    #[inline]
    pub fn is_flat(&self, symbol: usize) -> bool {
        self.position(symbol) == 0.0
    }
    #[inline]
    pub fn is_long(&self, symbol: usize) -> bool {
        self.position(symbol) > 0.0
    }
    #[inline]
    pub fn is_short(&self, symbol: usize) -> bool {
        self.position(symbol) < 0.0
    }
    /// Average entry price of `symbol`'s position (0 when flat).
    #[inline]
    pub fn entry_price(&self, symbol: usize) -> f64 {
        self.position_of(symbol).entry_price
    }
    /// Perpetuals: the liquidation price of `symbol`'s open position.
    #[inline]
    pub fn liquidation_price(&self, symbol: usize) -> Option<f64> {
        self.position_of(symbol).liquidation_price
    }
    /// Perpetuals: the latest funding rate known for `symbol`.
    #[inline]
    pub fn funding_rate(&self, symbol: usize) -> Option<f64> {
        self.position_of(symbol).funding_rate
    }
    /// The fills of this step (only on the first step of a host call,
    /// which is the only step that can have any).
    #[inline]
    pub fn fills(&self) -> &[SymbolFill] {
        if self.first_step_of_call {
            &self.account.fills
        } else {
            &[]
        }
    }
    #[inline]
    pub fn market(&self) -> Market {
        self.account.market
    }
    #[inline]
    pub fn commission(&self) -> f64 {
        self.account.commission
    }
    #[inline]
    pub fn leverage(&self) -> f64 {
        self.account.leverage
    }
    /// Actions placed so far on this step.
    #[inline]
    pub fn pending_actions(&self) -> &[SymbolAction] {
        self.actions
    }

    /// Places `action` on `symbol`. An index beyond the universe ends the
    /// run as an invalid order.
    #[inline]
    pub fn act(&mut self, symbol: usize, action: Action) {
        self.actions.push(SymbolAction { symbol, action });
    }
    #[inline]
    pub fn submit(&mut self, symbol: usize, order: Order) {
        self.act(symbol, Action::Submit(order));
    }
    /// Market buy of `symbol` at the next step's open where it has a bar.
    #[inline]
    pub fn buy(&mut self, symbol: usize, quantity: Quantity) {
        self.submit(symbol, Order::market(Side::Buy, quantity));
    }
    /// Market sell (a short when flat).
    #[inline]
    pub fn sell(&mut self, symbol: usize, quantity: Quantity) {
        self.submit(symbol, Order::market(Side::Sell, quantity));
    }
    #[inline]
    pub fn buy_limit(&mut self, symbol: usize, quantity: Quantity, price: f64) {
        self.submit(symbol, Order::limit(Side::Buy, quantity, price));
    }
    #[inline]
    pub fn sell_limit(&mut self, symbol: usize, quantity: Quantity, price: f64) {
        self.submit(symbol, Order::limit(Side::Sell, quantity, price));
    }
    #[inline]
    pub fn buy_stop(&mut self, symbol: usize, quantity: Quantity, price: f64) {
        self.submit(symbol, Order::stop(Side::Buy, quantity, price));
    }
    #[inline]
    pub fn sell_stop(&mut self, symbol: usize, quantity: Quantity, price: f64) {
        self.submit(symbol, Order::stop(Side::Sell, quantity, price));
    }
    /// A resting order of `kind` (market, limit or stop).
    #[inline]
    pub fn order(&mut self, symbol: usize, side: Side, quantity: Quantity, kind: OrderKind) {
        let order = match kind {
            OrderKind::Market => Order::market(side, quantity),
            OrderKind::Limit(p) => Order::limit(side, quantity, p),
            OrderKind::Stop(p) => Order::stop(side, quantity, p),
        };
        self.submit(symbol, order);
    }
    /// Closes `symbol`'s whole position at its next open.
    #[inline]
    pub fn close_position(&mut self, symbol: usize) {
        self.act(symbol, Action::ClosePosition);
    }
    /// Cancels `symbol`'s resting entry orders.
    #[inline]
    pub fn cancel_orders(&mut self, symbol: usize) {
        self.act(symbol, Action::CancelOrders);
    }
    #[inline]
    pub fn set_stop_loss(&mut self, symbol: usize, price: Option<f64>) {
        self.act(symbol, Action::SetStopLoss(price));
    }
    #[inline]
    pub fn set_take_profit(&mut self, symbol: usize, price: Option<f64>) {
        self.act(symbol, Action::SetTakeProfit(price));
    }
}
