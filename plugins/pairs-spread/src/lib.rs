//! "Pairs spread": a strategy over two symbols (contract 0.3.0's
//! `portfolio` interface), the same rules as its Python and JavaScript
//! twins (`python/app.py`, `js/strategy.js`), so the three give the same
//! report to the bit.
//!
//! The spread is the ratio of the first two symbols' closes (further
//! symbols are ignored), a division, so the three languages agree bit for
//! bit (no `ln`). Its z-score over the last `lookback` steps on which both
//! symbols have a bar: `mean = sum / n`, `std = sqrt(sum((s - mean)^2) /
//! n)` (population, summed oldest first), `z = (spread - mean) / std`.
//! Then, on each such step, in this order:
//!
//! - `|z| < exit_z`: flat (close whichever leg is open);
//! - `z > entry_z`: the first symbol is rich: short it and long the
//!   second, half the equity each (unless already so);
//! - `z < -entry_z`: long the first, short the second, likewise.
//!
//! Legs are market orders for half the equity each (an opposite leg is
//! closed first, by the order itself). Steps where either symbol has no
//! bar are skipped, and so is a window whose std is 0.

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
    /// The z-score of `spread` among the window (which holds it); none
    /// when the window's std is not above 0.
    fn z_score(&self, spread: f64) -> Option<f64> {
        let n = self.spreads.len() as f64;
        // Oldest first, in plain loops from 0.0: the twins' sums, to the bit.
        let ordered = || {
            self.spreads[self.next..]
                .iter()
                .chain(&self.spreads[..self.next])
        };
        let mut total = 0.0;
        for s in ordered() {
            total += s;
        }
        let mean = total / n;
        let mut var = 0.0;
        for s in ordered() {
            let d = s - mean;
            var += d * d;
        }
        let std = (var / n).sqrt();
        (std > 0.0).then(|| (spread - mean) / std)
    }
}

/// Holds `symbol` at half the equity, on the side of `direction` (+1
/// long, -1 short), unless it is already on that side (the SDKs' `target`).
fn steer(ctx: &mut PortfolioContext<'_>, symbol: usize, direction: i8) {
    match direction {
        1 if !ctx.is_long(symbol) => ctx.buy(symbol, LEG),
        -1 if !ctx.is_short(symbol) => ctx.sell(symbol, LEG),
        _ => {}
    }
}

impl PortfolioStrategy for PairsSpread {
    fn describe() -> Description {
        Description::new(
            "Pairs spread",
            env!("CARGO_PKG_VERSION"),
            "Long one symbol and short the other when their price ratio's z-score leaves \
             +/-entry_z; flat when it is back within exit_z",
        )
        .param(
            ParamSpec::int("lookback", 48)
                .range(2.0, 1000.0)
                .step(1.0)
                .help("Steps in the spread's mean and standard deviation"),
        )
        .param(
            ParamSpec::float("entry_z", 2.0)
                .range(0.1, 10.0)
                .step(0.1)
                .help("Open the pair when |z| is above this"),
        )
        .param(
            ParamSpec::float("exit_z", 0.5)
                .range(0.0, 10.0)
                .step(0.1)
                .help("Close the pair when |z| is below this"),
        )
        .columns(&[Column::Close])
    }

    fn new(params: &Params, symbols: &[String]) -> Result<Self, String> {
        if symbols.len() < 2 {
            return Err(format!(
                "pairs spread needs two symbols, got {}",
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
        let spread = a / b;
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
        if z.abs() < self.exit_z {
            for symbol in [0, 1] {
                if !ctx.is_flat(symbol) {
                    ctx.close_position(symbol);
                }
            }
        } else if z > self.entry_z {
            if !(ctx.is_short(0) && ctx.is_long(1)) {
                steer(ctx, 0, -1);
                steer(ctx, 1, 1);
            }
        } else if z < -self.entry_z && !(ctx.is_long(0) && ctx.is_short(1)) {
            steer(ctx, 0, 1);
            steer(ctx, 1, -1);
        }
    }
}

export_portfolio!(PairsSpread);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::PortfolioHarness;

    /// The Python and JavaScript twins' test setup.
    fn harness_with(symbols: &[&str], exit_z: f64) -> PortfolioHarness<PairsSpread> {
        PortfolioHarness::new(
            symbols,
            &[
                ("lookback", ParamValue::Int(5)),
                ("entry_z", ParamValue::Float(1.5)),
                ("exit_z", ParamValue::Float(exit_z)),
            ],
        )
        .unwrap()
    }

    fn harness() -> PortfolioHarness<PairsSpread> {
        harness_with(&["BTCUSDT", "ETHUSDT"], 0.3)
    }

    fn submit(symbol: usize, side: Side) -> SymbolAction {
        SymbolAction {
            symbol,
            action: Action::Submit(Order::market(side, LEG)),
        }
    }

    /// Feeds the first symbol's closes against a second one at 50.
    fn feed(h: &mut PortfolioHarness<PairsSpread>, first: &[f64]) -> Vec<Vec<SymbolAction>> {
        first
            .iter()
            .map(|&c| h.feed_closes(&[Some(c), Some(50.0)]))
            .collect()
    }

    fn hold(h: &mut PortfolioHarness<PairsSpread>, first: f64, second: f64) {
        h.account_mut().positions[0].qty = first;
        h.account_mut().positions[1].qty = second;
    }

    #[test]
    fn shorts_the_rich_leg_then_goes_flat_when_the_spread_reverts() {
        let mut h = harness();
        let out = feed(&mut h, &[100.0, 101.0, 100.0, 101.0, 100.0]);
        assert!(out.iter().all(Vec::is_empty));
        // The ratio jumps to 2.2 (z about 2): short the first, long the second.
        assert_eq!(
            feed(&mut h, &[110.0]),
            [vec![submit(0, Side::Sell), submit(1, Side::Buy)]]
        );
        hold(&mut h, -1.0, 1.0);
        assert!(feed(&mut h, &[110.0])[0].is_empty());
        // Back within exit_z: both legs closed.
        let closed = feed(&mut h, &[104.0]).remove(0);
        let symbols: Vec<usize> = closed.iter().map(|a| a.symbol).collect();
        assert_eq!(symbols, [0, 1]);
        assert!(closed.iter().all(|a| a.action == Action::ClosePosition));
    }

    #[test]
    fn longs_the_cheap_leg_and_reverses() {
        let mut h = harness();
        let out = feed(&mut h, &[100.0, 101.0, 100.0, 101.0, 100.0, 90.0]);
        assert_eq!(out[5], [submit(0, Side::Buy), submit(1, Side::Sell)]);
        hold(&mut h, 1.0, -1.0);
        let out = feed(&mut h, &[90.0, 90.0, 130.0]);
        assert_eq!(out[2], [submit(0, Side::Sell), submit(1, Side::Buy)]);
    }

    #[test]
    fn exit_is_checked_before_entry() {
        // exit_z above entry_z: a z of about 2 is within exit_z, so the
        // pair stays flat (and closes nothing, holding nothing).
        let mut h = harness_with(&["BTCUSDT", "ETHUSDT"], 3.0);
        let out = feed(&mut h, &[100.0, 101.0, 100.0, 101.0, 100.0, 110.0]);
        assert!(out.iter().all(Vec::is_empty));
        hold(&mut h, -1.0, 0.0);
        assert_eq!(
            feed(&mut h, &[120.0]),
            [vec![SymbolAction {
                symbol: 0,
                action: Action::ClosePosition
            }]]
        );
    }

    #[test]
    fn steps_without_both_bars_are_skipped_and_further_symbols_ignored() {
        let mut h = harness_with(&["BTCUSDT", "ETHUSDT", "SOLUSDT"], 0.3);
        let btc = [Some(100.0), Some(101.0), None, Some(100.0), Some(101.0)];
        let eth = [Some(50.0), Some(50.0), Some(50.0), None, Some(50.0)];
        for (a, b) in btc.into_iter().zip(eth) {
            assert!(h.feed_closes(&[a, b, Some(7.0)]).is_empty());
        }
        // Three complete steps so far (0, 1, 4); the fifth fills the window.
        assert!(h.feed_closes(&[Some(100.0), Some(50.0), None]).is_empty());
        assert_eq!(
            h.feed_closes(&[Some(110.0), Some(50.0), Some(1.0)]),
            vec![submit(0, Side::Sell), submit(1, Side::Buy)]
        );
    }

    #[test]
    fn a_flat_spread_never_trades() {
        let mut h = harness();
        assert!(feed(&mut h, &[100.0; 20]).iter().all(Vec::is_empty));
    }

    #[test]
    fn needs_two_symbols() {
        let err = PortfolioHarness::<PairsSpread>::new(&["BTCUSDT"], &[])
            .err()
            .unwrap();
        assert_eq!(err, "pairs spread needs two symbols, got 1");
    }
}
