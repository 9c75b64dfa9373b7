//! What `on_bar` sees of the account and where it places its orders.

use crate::types::{Action, Fill, Market, Order, Portfolio, Quantity, Side};

/// The strategy's view of its account on one bar, and where it places orders.
pub struct Context<'a> {
    portfolio: &'a Portfolio,
    close: f64,
    first_bar_of_call: bool,
    actions: &'a mut Vec<Action>,
}

impl<'a> Context<'a> {
    #[doc(hidden)]
    #[inline]
    pub fn new(
        portfolio: &'a Portfolio,
        close: f64,
        first_bar_of_call: bool,
        actions: &'a mut Vec<Action>,
    ) -> Self {
        Self {
            portfolio,
            close,
            first_bar_of_call,
            actions,
        }
    }

    /// Signed position size: > 0 long, < 0 short, 0 flat.
    #[inline]
    pub fn position(&self) -> f64 {
        self.portfolio.position
    }
    #[inline]
    pub fn is_flat(&self) -> bool {
        self.portfolio.position == 0.0
    }
    #[inline]
    pub fn is_long(&self) -> bool {
        self.portfolio.position > 0.0
    }
    #[inline]
    pub fn is_short(&self) -> bool {
        self.portfolio.position < 0.0
    }
    #[inline]
    pub fn cash(&self) -> f64 {
        self.portfolio.cash
    }
    /// Cash plus the position marked at this bar's close. On spot that is
    /// the account's equity; on a perpetual `cash` is the free balance
    /// (the position's margin is not in it), so this is not the
    /// exchange's equity there.
    #[inline]
    pub fn equity(&self) -> f64 {
        self.portfolio.cash + self.portfolio.position * self.close
    }
    /// Average entry price of the open position (0 when flat).
    #[inline]
    pub fn entry_price(&self) -> f64 {
        self.portfolio.entry_price
    }
    #[inline]
    pub fn stop_loss(&self) -> Option<f64> {
        self.portfolio.stop_loss
    }
    #[inline]
    pub fn take_profit(&self) -> Option<f64> {
        self.portfolio.take_profit
    }
    /// Resting limit and stop entry orders.
    #[inline]
    pub fn open_orders(&self) -> u32 {
        self.portfolio.open_orders
    }
    #[inline]
    pub fn commission(&self) -> f64 {
        self.portfolio.commission
    }
    #[inline]
    pub fn leverage(&self) -> f64 {
        self.portfolio.leverage
    }
    /// What the run trades: [`Market::Spot`] unless the host runs a
    /// perpetual backtest.
    #[inline]
    pub fn market(&self) -> Market {
        self.portfolio.market
    }
    /// Price at which the open perpetual position is liquidated; `None`
    /// when flat or on spot.
    #[inline]
    pub fn liquidation_price(&self) -> Option<f64> {
        self.portfolio.liquidation_price
    }
    /// The latest funding rate known at this bar (a fraction per funding
    /// interval; > 0 means longs pay shorts); `None` on spot or when no
    /// funding is known.
    #[inline]
    pub fn funding_rate(&self) -> Option<f64> {
        self.portfolio.funding_rate
    }
    /// How many fills happened on this bar (0 on most bars; a reversal
    /// makes two: the close, then the new entry).
    #[inline]
    pub fn fill_count(&self) -> u32 {
        if self.first_bar_of_call {
            self.portfolio.fill_count
        } else {
            0
        }
    }
    /// The last fill on this bar, if any.
    #[inline]
    pub fn last_fill(&self) -> Option<Fill> {
        if self.first_bar_of_call {
            self.portfolio.last_fill
        } else {
            None
        }
    }
    /// Actions placed so far on this bar.
    #[inline]
    pub fn pending_actions(&self) -> &[Action] {
        self.actions
    }

    #[inline]
    pub fn submit(&mut self, order: Order) {
        self.actions.push(Action::Submit(order));
    }
    /// Market buy with all the equity (reverses a short).
    #[inline]
    pub fn buy_all(&mut self) {
        self.submit(Order::market(Side::Buy, Quantity::Equity(1.0)));
    }
    /// Market sell with all the equity (reverses a long into a short).
    #[inline]
    pub fn sell_all(&mut self) {
        self.submit(Order::market(Side::Sell, Quantity::Equity(1.0)));
    }
    /// Closes the position at the next bar's open.
    #[inline]
    pub fn close_position(&mut self) {
        self.actions.push(Action::ClosePosition);
    }
    /// Cancels every resting entry order.
    #[inline]
    pub fn cancel_orders(&mut self) {
        self.actions.push(Action::CancelOrders);
    }
    #[inline]
    pub fn set_stop_loss(&mut self, price: Option<f64>) {
        self.actions.push(Action::SetStopLoss(price));
    }
    #[inline]
    pub fn set_take_profit(&mut self, price: Option<f64>) {
        self.actions.push(Action::SetTakeProfit(price));
    }
}
