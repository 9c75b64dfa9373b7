//! The strategy trait and the order vocabulary shared by every strategy
//! implementation (WASM components and native references alike).

use crate::candles::Candles;

/// An error raised by a strategy implementation. The engine passes it
/// through untouched; callers downcast it to the implementation's own type.
pub type StrategyError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    /// +1 for buys, -1 for sells.
    pub fn sign(self) -> f64 {
        match self {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantity {
    /// Base units.
    Units(f64),
    /// Fraction of equity times leverage (1.0 is all in); reverses an
    /// opposite position.
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

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    Submit(Order),
    ClosePosition,
    CancelOrders,
    SetStopLoss(Option<f64>),
    SetTakeProfit(Option<f64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FillReason {
    Market,
    Limit,
    Stop,
    StopLoss,
    TakeProfit,
    ClosePosition,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fill {
    pub ts: i64,
    pub side: Side,
    pub qty: f64,
    pub price: f64,
    pub fee: f64,
    pub reason: FillReason,
}

/// The account as a strategy sees it before the first bar of a call.
#[derive(Debug, Clone, Copy)]
pub struct PortfolioView<'a> {
    pub cash: f64,
    /// Signed quantity: > 0 long, < 0 short.
    pub position: f64,
    pub entry_price: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub open_orders: u32,
    pub commission: f64,
    pub leverage: f64,
    /// Adverse slippage of market fills, in basis points.
    pub slippage_bps: f64,
    /// Fills on the first bar of this call.
    pub fills: &'a [Fill],
    /// The market the run trades (docs/conventions/engine.md, "Perpetual futures").
    pub market: Market,
    /// Liquidation price of the open perpetual position; `None` when flat
    /// or on spot.
    pub liquidation_price: Option<f64>,
    /// The latest funding rate known at this bar (perpetuals); `None` on
    /// spot or when no funding is known.
    pub funding_rate: Option<f64>,
}

/// What a run trades: spot (the default) or a USDT-margined linear
/// perpetual (docs/conventions/engine.md, "Perpetual futures").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Market {
    #[default]
    Spot,
    LinearPerpetual,
}

impl Market {
    pub fn as_str(self) -> &'static str {
        match self {
            Market::Spot => "spot",
            Market::LinearPerpetual => "linear_perpetual",
        }
    }
}

/// Actions a strategy took on bars before the last one of a call, having
/// filled its own market orders (see [`Strategy::on_bars`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// (bar index, action), in bar order.
    pub actions: Vec<(usize, Action)>,
    /// The account the strategy assumed at the start of a bar, after that
    /// bar's market fills; the engine checks it bit for bit.
    pub assumed: Vec<Assumed>,
}

impl Plan {
    pub fn clear(&mut self) {
        self.actions.clear();
        self.assumed.clear();
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assumed {
    pub bar: usize,
    pub cash: f64,
    pub position: f64,
    pub entry_price: f64,
}

/// A trading strategy, driven by the engine in ranges of bars.
///
/// The engine calls `on_bars` with a range `start..end` over which the
/// account cannot change (no resting order can fill before `end`). The
/// strategy walks the bars in order and returns how many it consumed
/// (at least one): it stops early after the first bar on which it pushed
/// actions, which the engine then applies before the next bar.
///
/// A strategy may instead walk past bars whose actions are only market
/// orders without exits (or `ClosePosition`) while nothing rests, filling
/// them itself at the next open by docs/conventions/engine.md ("Guest-side fills"): it reports them in
/// `plan` with the account it assumed, which the engine applies and checks.
pub trait Strategy {
    fn on_bars(
        &mut self,
        candles: &Candles,
        start: usize,
        end: usize,
        portfolio: &PortfolioView<'_>,
        actions: &mut Vec<Action>,
        plan: &mut Plan,
    ) -> Result<usize, StrategyError>;

    /// Fuel burnt so far, for sandboxed strategies.
    fn fuel_used(&self) -> u64 {
        0
    }
}
