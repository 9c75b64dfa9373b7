//! Native reference of the `momentum-rotation` portfolio plugin: every
//! `rebalance` steps, hold the `top_k` symbols with the best return over
//! the last `lookback` steps, equal weight. Used as the native side of
//! the portfolio bench.

use crate::portfolio::{AccountView, PortfolioStrategy, SymbolAction, Universe};
use crate::{Action, Order, OrderKind, Quantity, Side, StrategyError};

#[derive(Debug, Clone)]
pub struct MomentumRotation {
    lookback: usize,
    rebalance: usize,
    top_k: usize,
    /// (return, symbol) of the symbols ranked at a rebalance.
    ranked: Vec<(f64, usize)>,
}

impl MomentumRotation {
    pub fn new(lookback: usize, rebalance: usize, top_k: usize) -> Self {
        Self {
            lookback: lookback.max(1),
            rebalance: rebalance.max(1),
            top_k: top_k.max(1),
            ranked: Vec::new(),
        }
    }

    /// The orders of a rebalance at step `t`: closes of held symbols that
    /// fell out of the top first, then entries of new ones.
    fn rebalance_at(
        &mut self,
        universe: &Universe,
        t: usize,
        account: &AccountView<'_>,
        actions: &mut Vec<SymbolAction>,
    ) {
        self.ranked.clear();
        for (s, series) in universe.symbols.iter().enumerate() {
            let (now, then) = (series.close[t], series.close[t - self.lookback]);
            if !now.is_nan() && !then.is_nan() {
                self.ranked.push((now / then - 1.0, s));
            }
        }
        self.ranked
            .sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        self.ranked.truncate(self.top_k);
        let chosen = |s: usize| self.ranked.iter().any(|&(_, k)| k == s);
        for (s, position) in account.positions.iter().enumerate() {
            if position.qty != 0.0 && !chosen(s) {
                actions.push(SymbolAction {
                    symbol: s,
                    action: Action::ClosePosition,
                });
            }
        }
        let weight = 1.0 / self.top_k as f64;
        for &(_, s) in &self.ranked {
            if account.positions[s].qty == 0.0 {
                actions.push(SymbolAction {
                    symbol: s,
                    action: Action::Submit(Order {
                        side: Side::Buy,
                        quantity: Quantity::Equity(weight),
                        kind: OrderKind::Market,
                        stop_loss: None,
                        take_profit: None,
                    }),
                });
            }
        }
    }
}

impl PortfolioStrategy for MomentumRotation {
    fn on_steps(
        &mut self,
        universe: &Universe,
        start: usize,
        end: usize,
        account: &AccountView<'_>,
        actions: &mut Vec<SymbolAction>,
    ) -> Result<usize, StrategyError> {
        // Rebalances fall on steps r-1, 2r-1, ...: the first at or after `start`.
        let r = self.rebalance;
        let mut t = start / r * r + r - 1;
        while t < end {
            if t >= self.lookback {
                self.rebalance_at(universe, t, account, actions);
                if !actions.is_empty() {
                    return Ok(t + 1 - start);
                }
            }
            t += r;
        }
        Ok(end - start)
    }
}
