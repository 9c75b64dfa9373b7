//! "Momentum Rotation": a strategy over several symbols (contract 0.3.0's
//! `portfolio` interface).
//!
//! Every `rebalance` steps (from step `lookback` on), it ranks the symbols
//! that have a bar at the step by their return over the last `lookback`
//! steps (`close / close lookback steps before - 1`; a symbol without a
//! bar at either end is not ranked) and holds the best `top_k`, equal
//! weight: positions that dropped out of the top are closed first, then
//! the new ones are bought with `1 / top_k` of the equity each, at market.
//! Symbols with no bar at the step are neither ranked nor traded. Ties
//! go to the symbol listed first.

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
            "Momentum Rotation",
            env!("CARGO_PKG_VERSION"),
            "Every few steps, holds the symbols with the best return over a lookback, equal weight",
        )
        .param(
            ParamSpec::int("lookback", 72)
                .range(1.0, 5000.0)
                .step(1.0)
                .help("Steps over which a symbol's return is measured"),
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
                .help("Symbols held after a rebalance"),
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
        if step.index < self.lookback as u64 || !step.index.is_multiple_of(self.rebalance) {
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
            if step.bar(k).is_some() && !ctx.is_flat(k) && !chosen(k) {
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

    #[test]
    fn holds_the_best_and_rotates_closing_first() {
        let mut h = harness(1);
        assert!(h
            .feed_closes(&[Some(10.0), Some(10.0), Some(10.0)])
            .is_empty());
        assert!(h
            .feed_closes(&[Some(10.0), Some(10.0), Some(10.0)])
            .is_empty());
        // Step 2: B rose most over two steps.
        assert_eq!(
            h.feed_closes(&[Some(11.0), Some(12.0), Some(10.0)]),
            vec![SymbolAction {
                symbol: 1,
                action: Action::Submit(Order::market(Side::Buy, Quantity::Equity(1.0))),
            }]
        );
        h.account_mut().positions[1].qty = 5.0;
        // Step 3 is not a rebalance.
        assert!(h
            .feed_closes(&[Some(20.0), Some(12.0), Some(10.0)])
            .is_empty());
        // Step 4: A leads now; B is closed first, then A bought.
        let actions = h.feed_closes(&[Some(22.0), Some(12.0), Some(10.0)]);
        assert_eq!(
            actions,
            vec![
                SymbolAction {
                    symbol: 1,
                    action: Action::ClosePosition,
                },
                SymbolAction {
                    symbol: 0,
                    action: Action::Submit(Order::market(Side::Buy, Quantity::Equity(1.0))),
                },
            ]
        );
    }

    #[test]
    fn symbols_without_a_bar_are_not_ranked_or_traded() {
        let mut h = harness(2);
        h.feed_closes(&[Some(10.0), Some(10.0), Some(10.0)]);
        h.feed_closes(&[Some(10.0), Some(10.0), Some(10.0)]);
        h.account_mut().positions[2].qty = 1.0;
        // C is held but has no bar: kept; A and B are bought at half each.
        let actions = h.feed_closes(&[Some(11.0), Some(12.0), None]);
        let weight = Quantity::Equity(0.5);
        assert_eq!(
            actions,
            vec![
                SymbolAction {
                    symbol: 1,
                    action: Action::Submit(Order::market(Side::Buy, weight)),
                },
                SymbolAction {
                    symbol: 0,
                    action: Action::Submit(Order::market(Side::Buy, weight)),
                },
            ]
        );
    }
}
