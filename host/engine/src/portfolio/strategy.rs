//! The trait a strategy over several symbols implements, and what it sees.

use super::universe::Universe;
use crate::strategy::{Action, Fill, Market, StrategyError};

/// One symbol's position as the strategy sees it before a call.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PositionView {
    /// Signed quantity: > 0 long, < 0 short.
    pub qty: f64,
    pub entry_price: f64,
    pub stop_loss: Option<f64>,
    pub take_profit: Option<f64>,
    pub open_orders: u32,
    /// Perpetuals: the open position's liquidation price.
    pub liquidation_price: Option<f64>,
    /// Perpetuals: the latest funding rate known for the symbol.
    pub funding_rate: Option<f64>,
}

/// A fill of one symbol.
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

/// The one account before the first step of a call.
#[derive(Debug, Clone, Copy)]
pub struct AccountView<'a> {
    /// Spot: the shared cash. Perpetuals: the wallet.
    pub cash: f64,
    /// Marked at each symbol's last close before the call.
    pub equity: f64,
    /// One per symbol, in the universe's order.
    pub positions: &'a [PositionView],
    /// Fills on the first step of this call.
    pub fills: &'a [SymbolFill],
    pub commission: f64,
    pub leverage: f64,
    pub slippage_bps: f64,
    pub market: Market,
}

/// A strategy over several symbols, driven in ranges of timeline steps.
///
/// As [`crate::Strategy`]: the engine calls `on_steps` with a range
/// `start..end` over which the account cannot change; the strategy walks
/// the steps in order and returns how many it consumed (at least one),
/// stopping after the first step on which it pushed actions. There are no
/// plans: the engine fills every order.
pub trait PortfolioStrategy {
    fn on_steps(
        &mut self,
        universe: &Universe,
        start: usize,
        end: usize,
        account: &AccountView<'_>,
        actions: &mut Vec<SymbolAction>,
    ) -> Result<usize, StrategyError>;

    /// Fuel burnt so far, for sandboxed strategies.
    fn fuel_used(&self) -> u64 {
        0
    }
}
