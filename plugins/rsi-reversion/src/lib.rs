//! "RSI Reversion": buy the dip with a resting limit order.
//!
//! When flat with no resting order and the RSI of the close crosses below
//! `oversold`, it places an all-in buy limit `entry_discount_pct` below the
//! close, with a stop-loss `stop_loss_pct` below the limit price attached to
//! the position it opens. A limit still unfilled after five bars is
//! cancelled. A long is closed at the next open once the RSI is above
//! `overbought`. With `allow_short` the mirror image also trades: a sell
//! limit above the close when the RSI crosses above `overbought`, a
//! stop-loss above it, covered once the RSI is below `oversold`.

use stratbox_sdk::prelude::*;

/// Bars a resting entry limit may wait for a fill before it is cancelled.
const ENTRY_TTL_BARS: u64 = 5;

pub struct RsiReversion {
    rsi: Rsi,
    oversold: f64,
    overbought: f64,
    /// `entry_discount_pct / 100`.
    discount: f64,
    /// `stop_loss_pct / 100`.
    stop_loss: f64,
    allow_short: bool,
    previous: Option<f64>,
    /// Index of the bar on whose close the resting entry was placed.
    entry_placed_at: Option<u64>,
}

/// `Err` naming the param unless `min <= value <= max` (NaN fails).
fn check_range(name: &str, value: f64, min: f64, max: f64) -> Result<(), String> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "{name} must be between {min} and {max}, got {value}"
        ))
    }
}

impl Strategy for RsiReversion {
    fn describe() -> Description {
        Description::new(
            "RSI Reversion",
            env!("CARGO_PKG_VERSION"),
            "Buys (or sells short) an RSI extreme with a resting limit order and a stop-loss, \
             exits when the RSI reaches the other extreme",
        )
        .param(
            ParamSpec::int("rsi_period", 14)
                .range(2.0, 100.0)
                .step(1.0)
                .help("Price changes in the RSI (Wilder smoothing)"),
        )
        .param(
            ParamSpec::float("oversold", 30.0)
                .range(1.0, 50.0)
                .step(1.0)
                .help("Enter long when the RSI crosses below this; cover a short below it"),
        )
        .param(
            ParamSpec::float("overbought", 70.0)
                .range(50.0, 99.0)
                .step(1.0)
                .help("Close a long above this; enter short when the RSI crosses above it"),
        )
        .param(
            ParamSpec::float("entry_discount_pct", 0.5)
                .range(0.0, 10.0)
                .step(0.1)
                .help("The entry limit rests this percent better than the signal close"),
        )
        .param(
            ParamSpec::float("stop_loss_pct", 5.0)
                .range(0.1, 50.0)
                .help("Stop-loss distance from the entry limit price, in percent"),
        )
        .param(
            ParamSpec::bool("allow_short", false)
                .help("Also sell short when the RSI crosses above overbought"),
        )
        .columns(&[Column::Close])
    }

    fn new(params: &Params) -> Result<Self, String> {
        let rsi_period = params.int("rsi_period")?;
        let oversold = params.float("oversold")?;
        let overbought = params.float("overbought")?;
        let entry_discount_pct = params.float("entry_discount_pct")?;
        let stop_loss_pct = params.float("stop_loss_pct")?;
        let allow_short = params.bool("allow_short")?;
        if !(2..=100).contains(&rsi_period) {
            return Err(format!(
                "rsi_period must be between 2 and 100, got {rsi_period}"
            ));
        }
        check_range("oversold", oversold, 1.0, 50.0)?;
        check_range("overbought", overbought, 50.0, 99.0)?;
        if oversold >= overbought {
            return Err(format!(
                "oversold ({oversold}) must be below overbought ({overbought})"
            ));
        }
        check_range("entry_discount_pct", entry_discount_pct, 0.0, 10.0)?;
        check_range("stop_loss_pct", stop_loss_pct, 0.1, 50.0)?;
        Ok(Self {
            rsi: Rsi::new(rsi_period as usize),
            oversold,
            overbought,
            discount: entry_discount_pct / 100.0,
            stop_loss: stop_loss_pct / 100.0,
            allow_short,
            previous: None,
            entry_placed_at: None,
        })
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut Context<'_>) {
        let Some(rsi) = self.rsi.update(bar.close) else {
            return;
        };
        let previous = self.previous.replace(rsi);

        if !ctx.is_flat() {
            // The entry filled: it no longer rests (anything else that does
            // is not ours to keep).
            self.entry_placed_at = None;
            if ctx.open_orders() > 0 {
                ctx.cancel_orders();
            }
            if (ctx.is_long() && rsi > self.overbought) || (ctx.is_short() && rsi < self.oversold) {
                ctx.close_position();
            }
            return;
        }

        if ctx.open_orders() > 0 {
            let fresh = matches!(
                self.entry_placed_at,
                Some(placed) if bar.index < placed.saturating_add(ENTRY_TTL_BARS)
            );
            if !fresh {
                ctx.cancel_orders();
                self.entry_placed_at = None;
            }
            return;
        }
        self.entry_placed_at = None;

        let Some(previous) = previous else {
            return;
        };
        let order = if previous >= self.oversold && rsi < self.oversold {
            let limit = bar.close * (1.0 - self.discount);
            let stop = limit * (1.0 - self.stop_loss);
            Order::limit(Side::Buy, Quantity::Equity(1.0), limit).stop_loss(stop)
        } else if self.allow_short && previous <= self.overbought && rsi > self.overbought {
            let limit = bar.close * (1.0 + self.discount);
            let stop = limit * (1.0 + self.stop_loss);
            Order::limit(Side::Sell, Quantity::Equity(1.0), limit).stop_loss(stop)
        } else {
            return;
        };
        // The host rejects non-positive prices, which would end the run.
        let valid = |p: f64| p.is_finite() && p > 0.0;
        if let (OrderKind::Limit(limit), Some(stop)) = (order.kind, order.stop_loss) {
            if valid(limit) && valid(stop) {
                ctx.submit(order);
                self.entry_placed_at = Some(bar.index);
            }
        }
    }
}

export_strategy!(RsiReversion);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::Harness;

    /// RSI(2) with the default 30/70 levels, 1% discount, 5% stop.
    fn harness(allow_short: bool) -> Harness<RsiReversion> {
        Harness::new(&[
            ("rsi_period", ParamValue::Int(2)),
            ("entry_discount_pct", ParamValue::Float(1.0)),
            ("allow_short", ParamValue::Bool(allow_short)),
        ])
        .unwrap()
    }

    /// Warms RSI(2) up on a rise (RSI 100), then drops: the drop to 90
    /// takes the RSI from 100 to below 30.
    fn feed_drop(h: &mut Harness<RsiReversion>) -> Vec<Action> {
        for close in [100.0, 101.0, 102.0] {
            assert!(h.feed_close(close).is_empty());
        }
        h.feed_close(90.0)
    }

    fn buy_limit(limit: f64, stop: f64) -> Action {
        Action::Submit(Order::limit(Side::Buy, Quantity::Equity(1.0), limit).stop_loss(stop))
    }

    #[test]
    fn oversold_cross_places_discounted_buy_limit_with_stop() {
        let mut h = harness(false);
        let limit = 90.0 * (1.0 - 0.01);
        assert_eq!(
            feed_drop(&mut h),
            vec![buy_limit(limit, limit * (1.0 - 0.05))]
        );
        // Resting: no second order while it waits.
        h.portfolio_mut().open_orders = 1;
        assert!(h.feed_close(85.0).is_empty());
    }

    #[test]
    fn unfilled_limit_is_cancelled_after_five_bars() {
        let mut h = harness(false);
        assert_eq!(feed_drop(&mut h).len(), 1);
        h.portfolio_mut().open_orders = 1;
        for close in [91.0, 92.0, 93.0, 94.0] {
            assert!(h.feed_close(close).is_empty());
        }
        assert_eq!(h.feed_close(95.0), vec![Action::CancelOrders]);
        // Cancelled, flat, RSI high: nothing new until the next cross.
        h.portfolio_mut().open_orders = 0;
        assert!(h.feed_close(96.0).is_empty());
    }

    #[test]
    fn long_is_closed_when_rsi_is_overbought() {
        let mut h = harness(false);
        assert_eq!(feed_drop(&mut h).len(), 1);
        // The limit filled on the next bar, as the engine reports it.
        let p = h.portfolio_mut();
        p.open_orders = 0;
        p.position = 1.0;
        p.entry_price = 89.1;
        p.stop_loss = Some(89.1 * 0.95);
        // A small bounce keeps the RSI below 70; a strong one exits.
        assert!(h.feed_close(89.5).is_empty());
        assert_eq!(h.feed_close(99.0), vec![Action::ClosePosition]);
    }

    #[test]
    fn long_only_ignores_overbought_cross_and_short_mode_sells_above() {
        let rise = [100.0, 99.0, 98.0, 110.0];
        let mut long_only = harness(false);
        for close in rise {
            assert!(long_only.feed_close(close).is_empty());
        }
        let mut both = harness(true);
        for close in &rise[..3] {
            assert!(both.feed_close(*close).is_empty());
        }
        let limit = 110.0 * 1.01;
        assert_eq!(
            both.feed_close(110.0),
            vec![Action::Submit(
                Order::limit(Side::Sell, Quantity::Equity(1.0), limit).stop_loss(limit * 1.05)
            )]
        );
        // Filled short; covered once the RSI falls below oversold.
        both.portfolio_mut().position = -1.0;
        assert_eq!(both.feed_close(95.0), vec![Action::ClosePosition]);
    }

    #[test]
    fn rejects_inverted_levels_and_bad_period() {
        let err = Harness::<RsiReversion>::new(&[
            ("oversold", ParamValue::Float(50.0)),
            ("overbought", ParamValue::Float(50.0)),
        ])
        .err()
        .unwrap();
        assert!(err.contains("must be below overbought"), "{err}");
        let err = Harness::<RsiReversion>::new(&[("rsi_period", ParamValue::Int(1))])
            .err()
            .unwrap();
        assert!(err.contains("rsi_period"), "{err}");
        let err = Harness::<RsiReversion>::new(&[("stop_loss_pct", ParamValue::Float(f64::NAN))])
            .err()
            .unwrap();
        assert!(err.contains("stop_loss_pct"), "{err}");
    }
}
