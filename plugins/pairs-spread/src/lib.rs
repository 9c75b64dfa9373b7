//! "Pairs Spread": a strategy over two symbols (contract 0.3.0's
//! `portfolio` interface).
//!
//! The spread is `ln(close of symbol 0) - ln(close of symbol 1)`, taken at
//! every step where both have a bar. Its z-score over the last `lookback`
//! such steps (the current one included; population standard deviation)
//! decides: above `entry_z`, symbol 0 is rich, so short 0 and long 1;
//! below `-entry_z`, long 0 and short 1; within `exit_z` of zero, flat
//! both. Each leg is sized at half the equity. Steps where either symbol
//! has no bar are skipped.

use stratbox_sdk::prelude::*;

pub struct PairsSpread {
    lookback: usize,
    entry_z: f64,
    exit_z: f64,
    /// The last `lookback` spreads, oldest first once full (a ring).
    spreads: Vec<f64>,
    next: usize,
    filled: bool,
}

/// Half the equity per leg.
const LEG: Quantity = Quantity::Equity(0.5);

impl PairsSpread {
    /// The z-score of `spread` among the window (which holds it).
    fn z_score(&self, spread: f64) -> Option<f64> {
        let n = self.lookback as f64;
        // Oldest first, so the sums run in the same order every time.
        let ordered = || {
            self.spreads[self.next..]
                .iter()
                .chain(&self.spreads[..self.next])
        };
        let mean = ordered().sum::<f64>() / n;
        let var = ordered().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n;
        let std = var.sqrt();
        (std > 0.0).then(|| (spread - mean) / std)
    }
}

/// Where each leg should be: +1 long, -1 short, 0 flat.
fn target(z: f64, entry_z: f64, exit_z: f64) -> Option<(i8, i8)> {
    if z > entry_z {
        Some((-1, 1))
    } else if z < -entry_z {
        Some((1, -1))
    } else if z.abs() < exit_z {
        Some((0, 0))
    } else {
        None
    }
}

/// Moves `symbol` to `direction`, if it is not there already.
fn steer(ctx: &mut PortfolioContext<'_>, symbol: usize, direction: i8) {
    match direction {
        1 if !ctx.is_long(symbol) => ctx.buy(symbol, LEG),
        -1 if !ctx.is_short(symbol) => ctx.sell(symbol, LEG),
        0 if !ctx.is_flat(symbol) => ctx.close_position(symbol),
        _ => {}
    }
}

impl PortfolioStrategy for PairsSpread {
    fn describe() -> Description {
        Description::new(
            "Pairs Spread",
            env!("CARGO_PKG_VERSION"),
            "Trades the z-score of the log-close spread of two symbols: short the rich leg, long the cheap one",
        )
        .param(
            ParamSpec::int("lookback", 48)
                .range(2.0, 1000.0)
                .step(1.0)
                .help("Steps (where both symbols have a bar) in the spread's mean and deviation"),
        )
        .param(
            ParamSpec::float("entry_z", 2.0)
                .range(0.1, 10.0)
                .help("Enter when the spread's z-score is beyond this"),
        )
        .param(
            ParamSpec::float("exit_z", 0.5)
                .range(0.0, 10.0)
                .help("Go flat when the z-score is back within this of zero"),
        )
        .columns(&[Column::Close])
    }

    fn new(params: &Params, symbols: &[String]) -> Result<Self, String> {
        if symbols.len() != 2 {
            return Err(format!(
                "a pairs strategy trades exactly two symbols, got {}",
                symbols.len()
            ));
        }
        let lookback = params.int("lookback")?;
        if lookback < 2 {
            return Err("lookback must be at least 2".into());
        }
        Ok(Self {
            lookback: lookback as usize,
            entry_z: params.float("entry_z")?,
            exit_z: params.float("exit_z")?,
            spreads: Vec::with_capacity(lookback as usize),
            next: 0,
            filled: false,
        })
    }

    fn on_step(&mut self, step: &StepBars<'_>, ctx: &mut PortfolioContext<'_>) {
        let (Some(a), Some(b)) = (step.close(0), step.close(1)) else {
            return;
        };
        let spread = a.ln() - b.ln();
        if self.filled {
            self.spreads[self.next] = spread;
        } else {
            self.spreads.push(spread);
        }
        self.next += 1;
        if self.next == self.lookback {
            self.next = 0;
            self.filled = true;
        }
        if !self.filled {
            return;
        }
        let Some(z) = self.z_score(spread) else {
            return;
        };
        if let Some((first, second)) = target(z, self.entry_z, self.exit_z) {
            steer(ctx, 0, first);
            steer(ctx, 1, second);
        }
    }
}

export_portfolio!(PairsSpread);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::PortfolioHarness;

    fn harness() -> PortfolioHarness<PairsSpread> {
        PortfolioHarness::new(
            &["A", "B"],
            &[
                ("lookback", ParamValue::Int(4)),
                ("entry_z", ParamValue::Float(1.5)),
                ("exit_z", ParamValue::Float(0.5)),
            ],
        )
        .unwrap()
    }

    fn submit(symbol: usize, side: Side) -> SymbolAction {
        SymbolAction {
            symbol,
            action: Action::Submit(Order::market(side, LEG)),
        }
    }

    #[test]
    fn a_rich_first_leg_is_sold_and_the_second_bought_then_both_closed() {
        let mut h = harness();
        for _ in 0..3 {
            assert!(h.feed_closes(&[Some(100.0), Some(100.0)]).is_empty());
        }
        // The spread jumps: z = (x - x/4) / sqrt(3x²/16) = sqrt(3) > 1.5.
        assert_eq!(
            h.feed_closes(&[Some(110.0), Some(100.0)]),
            vec![submit(0, Side::Sell), submit(1, Side::Buy)]
        );
        h.account_mut().positions[0].qty = -1.0;
        h.account_mut().positions[1].qty = 1.0;
        // Still rich: already there, nothing to do.
        assert!(h.feed_closes(&[Some(121.0), Some(100.0)]).is_empty());
        // With x = ln(1.1) the window is [0, x, 2x, 0]: z = -0.9, held.
        assert!(h.feed_closes(&[Some(100.0), Some(100.0)]).is_empty());
        // [x, 2x, 0, x]: the spread is at its mean, z = 0: flat both.
        let closed = h.feed_closes(&[Some(110.0), Some(100.0)]);
        let symbols: Vec<usize> = closed.iter().map(|a| a.symbol).collect();
        assert_eq!(symbols, [0, 1]);
        assert!(closed.iter().all(|a| a.action == Action::ClosePosition));
    }

    #[test]
    fn a_cheap_first_leg_is_bought_and_steps_without_both_bars_are_skipped() {
        let mut h = harness();
        for _ in 0..3 {
            h.feed_closes(&[Some(100.0), Some(100.0)]);
        }
        // One leg missing: not a spread, nothing happens and nothing counts.
        assert!(h.feed_closes(&[None, Some(100.0)]).is_empty());
        assert!(h.feed_closes(&[Some(50.0), None]).is_empty());
        assert_eq!(
            h.feed_closes(&[Some(90.0), Some(100.0)]),
            vec![submit(0, Side::Buy), submit(1, Side::Sell)]
        );
    }

    #[test]
    fn needs_two_symbols() {
        let err = PortfolioHarness::<PairsSpread>::new(&["A", "B", "C"], &[])
            .err()
            .unwrap();
        assert!(err.contains("exactly two"), "{err}");
    }
}
