//! "EMA Crossover", as the Python service ran it.
//!
//! Long only: buy all in on a bullish cross when flat, close on a bearish
//! cross. With `allow_short`, after the first cross it is always in the
//! market, reversing on each cross.

use stratbox_sdk::prelude::*;

pub struct EmaCrossover {
    fast: Ema,
    slow: Ema,
    allow_short: bool,
    previous: Option<(f64, f64)>,
}

impl Strategy for EmaCrossover {
    fn describe() -> Description {
        Description::new(
            "EMA Crossover",
            env!("CARGO_PKG_VERSION"),
            "Long (or reversing long/short) on crossings of a fast and a slow EMA of the close",
        )
        .param(
            ParamSpec::int("fast_period", 12)
                .range(1.0, 1000.0)
                .step(1.0)
                .help("Bars in the fast EMA"),
        )
        .param(
            ParamSpec::int("slow_period", 26)
                .range(1.0, 5000.0)
                .step(1.0)
                .help("Bars in the slow EMA"),
        )
        .param(
            ParamSpec::bool("allow_short", false).help("Reverse into a short on a bearish cross"),
        )
        .columns(&[Column::Close])
    }

    fn new(params: &Params) -> Result<Self, String> {
        let fast_period = params.int("fast_period")?;
        let slow_period = params.int("slow_period")?;
        if fast_period < 1 || slow_period < 1 {
            return Err("fast_period and slow_period must be at least 1".into());
        }
        Ok(Self {
            fast: Ema::new(fast_period as usize),
            slow: Ema::new(slow_period as usize),
            allow_short: params.bool("allow_short")?,
            previous: None,
        })
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut Context<'_>) {
        let (Some(fast), Some(slow)) = (self.fast.update(bar.close), self.slow.update(bar.close))
        else {
            return;
        };
        if let Some((prev_fast, prev_slow)) = self.previous {
            let bullish = crossed_above(prev_fast, prev_slow, fast, slow);
            let bearish = crossed_below(prev_fast, prev_slow, fast, slow);
            if self.allow_short {
                if bullish && !ctx.is_long() {
                    ctx.buy_all();
                } else if bearish && !ctx.is_short() {
                    ctx.sell_all();
                }
            } else if bullish && ctx.is_flat() {
                ctx.buy_all();
            } else if bearish && ctx.is_long() {
                ctx.close_position();
            }
        }
        self.previous = Some((fast, slow));
    }
}

export_strategy!(EmaCrossover);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::Harness;

    fn harness(allow_short: bool) -> Harness<EmaCrossover> {
        Harness::new(&[
            ("fast_period", ParamValue::Int(2)),
            ("slow_period", ParamValue::Int(4)),
            ("allow_short", ParamValue::Bool(allow_short)),
        ])
        .unwrap()
    }

    #[test]
    fn buys_on_bullish_cross_and_closes_on_bearish() {
        let mut h = harness(false);
        // Falling prices keep fast below slow; a jump crosses it above.
        for close in [10.0, 9.0, 8.0, 7.0] {
            assert!(h.feed_close(close).is_empty());
        }
        let actions = h.feed_close(12.0);
        assert_eq!(
            actions,
            vec![Action::Submit(Order::market(
                Side::Buy,
                Quantity::Equity(1.0)
            ))]
        );
        h.portfolio_mut().position = 1.0;
        assert!(h.feed_close(13.0).is_empty());
        assert_eq!(h.feed_close(5.0), vec![Action::ClosePosition]);
    }

    #[test]
    fn long_only_ignores_bearish_cross_when_flat() {
        let mut h = harness(false);
        for close in [7.0, 8.0, 9.0, 10.0] {
            h.feed_close(close);
        }
        assert!(h.feed_close(2.0).is_empty());
    }

    #[test]
    fn short_mode_reverses() {
        let mut h = harness(true);
        for close in [7.0, 8.0, 9.0, 10.0] {
            h.feed_close(close);
        }
        assert_eq!(
            h.feed_close(2.0),
            vec![Action::Submit(Order::market(
                Side::Sell,
                Quantity::Equity(1.0)
            ))]
        );
    }

    #[test]
    fn rejects_zero_period() {
        let err = Harness::<EmaCrossover>::new(&[("fast_period", ParamValue::Int(0))])
            .err()
            .unwrap();
        assert!(err.contains("at least 1"), "{err}");
    }
}
