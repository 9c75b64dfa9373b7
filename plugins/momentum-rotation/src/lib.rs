//! "Momentum rotation": a strategy over several symbols (contract 0.3.0's
//! `portfolio` interface), the same rules as its Python and JavaScript
//! twins (`python/app.py`, `js/strategy.js`) and the engine's native
//! reference (`host/engine/src/reference/momentum_rotation.rs`), so they
//! give the same report to the bit.
//!
//! Every `rebalance` steps (on step `t` when `(t + 1) % rebalance == 0`
//! and `t >= lookback`, `t` the step's index in the run: steps
//! `rebalance - 1`, `2 * rebalance - 1`, ...) it ranks the symbols by their
//! return over the last `lookback` steps,
//! `close[t] / close[t - lookback] - 1` (only symbols with a bar at both
//! steps; ties go to the symbol listed first), and holds the `top_k`
//! best, equal weight, with market orders: first it closes every
//! position outside the new top (universe order, whether or not the
//! symbol has a bar at the step), then it buys each top symbol it does not
//! hold, `1 / top_k` of the equity each (best first). Positions it keeps
//! are left as they are.

use stratbox_sdk::prelude::*;

pub struct MomentumRotation {
    lookback: usize,
    rebalance: u64,
    top_k: usize,
    /// Per symbol, the closes of the last `lookback + 1` steps (NaN where
    /// it had no bar), as a ring indexed by step.
    closes: Vec<Vec<f64>>,
    /// Reused per rebalance: (symbol, return).
    ranked: Vec<(usize, f64)>,
}

impl PortfolioStrategy for MomentumRotation {
    fn describe() -> Description {
        Description::new(
            "Momentum rotation",
            env!("CARGO_PKG_VERSION"),
            "Every `rebalance` steps, hold the `top_k` symbols with the best return over \
             `lookback` steps, equal weight",
        )
        .param(
            ParamSpec::int("lookback", 72)
                .range(1.0, 5000.0)
                .step(1.0)
                .help("Steps over which the return is measured"),
        )
        .param(
            ParamSpec::int("rebalance", 24)
                .range(1.0, 5000.0)
                .step(1.0)
                .help("Steps between two rebalances"),
        )
        .param(
            ParamSpec::int("top_k", 2)
                .range(1.0, 20.0)
                .step(1.0)
                .help("Symbols held, equal weight"),
        )
        .columns(&[Column::Close])
    }

    fn new(params: &Params, symbols: &[String]) -> Result<Self, String> {
        let lookback = params.int("lookback")?;
        let rebalance = params.int("rebalance")?;
        let top_k = params.int("top_k")?;
        if lookback < 1 || rebalance < 1 || top_k < 1 {
            return Err("lookback, rebalance and top_k must be at least 1".into());
        }
        let ring = lookback as usize + 1;
        Ok(Self {
            lookback: lookback as usize,
            rebalance: rebalance as u64,
            top_k: top_k as usize,
            closes: vec![vec![f64::NAN; ring]; symbols.len()],
            ranked: Vec::with_capacity(symbols.len()),
        })
    }

    fn on_step(&mut self, step: &StepBars<'_>, ctx: &mut PortfolioContext<'_>) {
        let ring = self.lookback + 1;
        let now = (step.index % ring as u64) as usize;
        for (k, closes) in self.closes.iter_mut().enumerate() {
            closes[now] = step.close(k).unwrap_or(f64::NAN);
        }
        if step.index < self.lookback as u64 || !(step.index + 1).is_multiple_of(self.rebalance) {
            return;
        }
        let then = ((step.index - self.lookback as u64) % ring as u64) as usize;
        self.ranked.clear();
        for (k, closes) in self.closes.iter().enumerate() {
            let (last, first) = (closes[now], closes[then]);
            if !last.is_nan() && !first.is_nan() {
                self.ranked.push((k, last / first - 1.0));
            }
        }
        // Best first; ties to the symbol listed first (a stable sort).
        self.ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        self.ranked.truncate(self.top_k);
        let chosen = |k: usize| self.ranked.iter().any(|&(s, _)| s == k);
        for k in 0..self.closes.len() {
            if !ctx.is_flat(k) && !chosen(k) {
                ctx.close_position(k);
            }
        }
        let weight = Quantity::Equity(1.0 / self.top_k as f64);
        for &(k, _) in &self.ranked {
            if ctx.is_flat(k) {
                ctx.buy(k, weight);
            }
        }
    }
}

export_portfolio!(MomentumRotation);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::PortfolioHarness;

    fn harness(top_k: i64) -> PortfolioHarness<MomentumRotation> {
        PortfolioHarness::new(
            &["A", "B", "C"],
            &[
                ("lookback", ParamValue::Int(2)),
                ("rebalance", ParamValue::Int(2)),
                ("top_k", ParamValue::Int(top_k)),
            ],
        )
        .unwrap()
    }

    fn buy(symbol: usize, fraction: f64) -> SymbolAction {
        SymbolAction {
            symbol,
            action: Action::Submit(Order::market(Side::Buy, Quantity::Equity(fraction))),
        }
    }

    fn close(symbol: usize) -> SymbolAction {
        SymbolAction {
            symbol,
            action: Action::ClosePosition,
        }
    }

    #[test]
    fn holds_the_best_and_rotates_closing_first() {
        let mut h = harness(1);
        // Steps 0-2: before lookback, or not a rebalance (t + 1 odd).
        for _ in 0..3 {
            assert!(h
                .feed_closes(&[Some(10.0), Some(10.0), Some(10.0)])
                .is_empty());
        }
        // Step 3: B rose most over two steps.
        assert_eq!(
            h.feed_closes(&[Some(11.0), Some(12.0), Some(10.0)]),
            [buy(1, 1.0)]
        );
        h.account_mut().positions[1].qty = 5.0;
        // Step 4 is not a rebalance.
        assert!(h
            .feed_closes(&[Some(20.0), Some(12.0), Some(10.0)])
            .is_empty());
        // Step 5: A leads now; B is closed first, then A bought.
        assert_eq!(
            h.feed_closes(&[Some(22.0), Some(12.0), Some(10.0)]),
            [close(1), buy(0, 1.0)]
        );
    }

    #[test]
    fn symbols_without_a_bar_are_not_ranked_and_held_ones_closed() {
        let mut h = harness(2);
        for _ in 0..3 {
            h.feed_closes(&[Some(10.0), Some(10.0), Some(10.0)]);
        }
        h.account_mut().positions[2].qty = 1.0;
        // Step 3: C has no bar, so it is not ranked; held outside the top,
        // it is closed first. B and A are bought at half each, best first.
        assert_eq!(
            h.feed_closes(&[Some(11.0), Some(12.0), None]),
            [close(2), buy(1, 0.5), buy(0, 0.5)]
        );
    }
}
