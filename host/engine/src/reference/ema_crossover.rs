//! The `ema-crossover` plugin written directly against the engine, with
//! its own EMA (same float form: alpha = 2/(n+1), ema[0] = x[0]).

use crate::candles::Candles;
use crate::{
    Action, Order, OrderKind, Plan, PortfolioView, Quantity, Side, Strategy, StrategyError,
};

#[derive(Debug, Clone)]
pub struct EmaCrossover {
    fast_alpha: f64,
    slow_alpha: f64,
    allow_short: bool,
    /// (fast, slow) after the last bar seen.
    last: Option<(f64, f64)>,
}

impl EmaCrossover {
    pub fn new(fast_period: u32, slow_period: u32, allow_short: bool) -> Self {
        let alpha = |n: u32| 2.0 / (n.max(1) as f64 + 1.0);
        Self {
            fast_alpha: alpha(fast_period),
            slow_alpha: alpha(slow_period),
            allow_short,
            last: None,
        }
    }
}

fn all_in(side: Side) -> Action {
    Action::Submit(Order {
        side,
        quantity: Quantity::Equity(1.0),
        kind: OrderKind::Market,
        stop_loss: None,
        take_profit: None,
    })
}

impl Strategy for EmaCrossover {
    fn on_bars(
        &mut self,
        candles: &Candles,
        start: usize,
        end: usize,
        portfolio: &PortfolioView<'_>,
        actions: &mut Vec<Action>,
        _plan: &mut Plan,
    ) -> Result<usize, StrategyError> {
        let position = portfolio.position;
        for i in start..end {
            let x = candles.close[i];
            let (fast, slow) = match self.last {
                None => (x, x),
                Some((f, s)) => (
                    self.fast_alpha * x + (1.0 - self.fast_alpha) * f,
                    self.slow_alpha * x + (1.0 - self.slow_alpha) * s,
                ),
            };
            if let Some((pf, ps)) = self.last {
                let bullish = pf < ps && fast > slow;
                let bearish = pf > ps && fast < slow;
                if self.allow_short {
                    if bullish && position <= 0.0 {
                        actions.push(all_in(Side::Buy));
                    } else if bearish && position >= 0.0 {
                        actions.push(all_in(Side::Sell));
                    }
                } else if bullish && position == 0.0 {
                    actions.push(all_in(Side::Buy));
                } else if bearish && position > 0.0 {
                    actions.push(Action::ClosePosition);
                }
            }
            self.last = Some((fast, slow));
            if !actions.is_empty() {
                return Ok(i + 1 - start);
            }
        }
        Ok(end - start)
    }
}
