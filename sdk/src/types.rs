//! The plain values a strategy reads and writes; the runtime converts them
//! to and from the WIT types so authors never see the bindings.

/// One bar, as the strategy sees it in [`crate::Strategy::on_bar`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    /// Index of the bar in the whole run (0 is the first bar).
    pub index: u64,
    /// Bar open time, unix seconds UTC.
    pub ts: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    /// Base units, fractional allowed.
    Units(f64),
    /// Fraction of equity times leverage; 1.0 is all in. Reverses an
    /// opposite position (closing it first).
    Equity(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OrderKind {
    Market,
    Limit(f64),
    Stop(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Order {
    pub side: Side,
    pub quantity: Quantity,
    pub kind: OrderKind,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
}

impl Order {
    /// Fills at the next bar's open.
    pub fn market(side: Side, quantity: Quantity) -> Self {
        Self::new(side, quantity, OrderKind::Market)
    }
    /// Rests until the price trades at `price` or better.
    pub fn limit(side: Side, quantity: Quantity, price: f64) -> Self {
        Self::new(side, quantity, OrderKind::Limit(price))
    }
    /// Rests until the price trades through `price` (fills at the open on a gap).
    pub fn stop(side: Side, quantity: Quantity, price: f64) -> Self {
        Self::new(side, quantity, OrderKind::Stop(price))
    }
    fn new(side: Side, quantity: Quantity, kind: OrderKind) -> Self {
        Self {
            side,
            quantity,
            kind,
            stop_loss: None,
            take_profit: None,
        }
    }
    /// Attaches a stop-loss to the position this order opens.
    pub fn stop_loss(mut self, price: f64) -> Self {
        self.stop_loss = Some(price);
        self
    }
    /// Attaches a take-profit to the position this order opens.
    pub fn take_profit(mut self, price: f64) -> Self {
        self.take_profit = Some(price);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    Submit(Order),
    ClosePosition,
    CancelOrders,
    SetStopLoss(Option<f64>),
    SetTakeProfit(Option<f64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillReason {
    Market,
    Limit,
    Stop,
    StopLoss,
    TakeProfit,
    ClosePosition,
}

/// The last fill on the current bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fill {
    pub side: Side,
    pub qty: f64,
    pub price: f64,
    pub reason: FillReason,
}

/// The account before the current bar's decision. Constant within one host
/// call: the host returns control at every fill.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Portfolio {
    pub cash: f64,
    /// Signed quantity: > 0 long, < 0 short.
    pub position: f64,
    pub entry_price: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub open_orders: u32,
    pub commission: f64,
    pub leverage: f64,
    /// Fills on the first bar of the host call (a reversal makes two).
    pub fill_count: u32,
    pub last_fill: Option<Fill>,
    /// What the run trades (contract 0.2.0; spot unless the host says so).
    pub market: Market,
    /// Liquidation price of the open perpetual position; `None` when flat
    /// or on spot.
    pub liquidation_price: Option<f64>,
    /// The latest funding rate known; `None` on spot or when no funding is
    /// known.
    pub funding_rate: Option<f64>,
}

/// What a run trades.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Market {
    #[default]
    Spot,
    /// A USDT-margined linear perpetual (isolated margin): the account can
    /// be liquidated and pays or receives funding.
    LinearPerpetual,
}
