//! "Funding-aware EMA crossover": the example of contract 0.2.0's market
//! state (docs/strategies.md#market-state).
//!
//! Long only, on crossings of a fast and a slow EMA of the close, as
//! `ema-crossover` does, with two perpetual-futures rules:
//!
//! - while the latest funding rate is above `max_funding_rate`, longs pay
//!   shorts every funding interval, so it opens no long and closes the one
//!   it holds;
//! - with a position open, it keeps a stop-loss between the entry and the
//!   liquidation price (`liq_buffer` of the way from the liquidation price
//!   to the entry), so a bad move exits at the stop, with margin left,
//!   instead of losing the whole margin to a liquidation. The stop only
//!   ever tightens: funding taken from the margin moves the liquidation
//!   price towards the entry, and the stop follows.
//!
//! On spot there is neither a funding rate nor a liquidation price, so it
//! trades exactly as `ema-crossover` long only.

use stratbox_sdk::prelude::*;

pub struct FundingAware {
    fast: Ema,
    slow: Ema,
    max_funding_rate: f64,
    liq_buffer: f64,
    previous: Option<(f64, f64)>,
}

impl FundingAware {
    /// The stop this strategy wants for the open long, if any: `liq_buffer`
    /// of the way from the liquidation price up to the entry.
    fn wanted_stop(&self, ctx: &Context<'_>) -> Option<f64> {
        let lp = ctx.liquidation_price()?;
        // Written so a NaN anywhere means no stop.
        let below_entry = lp < ctx.entry_price();
        if !ctx.is_long() || self.liq_buffer <= 0.0 || !below_entry {
            return None;
        }
        Some(lp + self.liq_buffer * (ctx.entry_price() - lp))
    }
}

impl Strategy for FundingAware {
    fn describe() -> Description {
        Description::new(
            "Funding-aware EMA Crossover",
            env!("CARGO_PKG_VERSION"),
            "EMA crossover, long only; no longs while funding is above a threshold, a stop kept clear of the liquidation price",
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
            ParamSpec::float("max_funding_rate", 0.0003)
                .range(-0.01, 0.01)
                .step(0.0001)
                .help("No longs while the latest funding rate is above this (0.0003 = 0.03% per interval)"),
        )
        .param(
            ParamSpec::float("liq_buffer", 0.25)
                .range(0.0, 0.99)
                .step(0.05)
                .help("Stop-loss this fraction of the way from the liquidation price to the entry; 0 for none"),
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
            max_funding_rate: params.float("max_funding_rate")?,
            liq_buffer: params.float("liq_buffer")?,
            previous: None,
        })
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut Context<'_>) {
        let (Some(fast), Some(slow)) = (self.fast.update(bar.close), self.slow.update(bar.close))
        else {
            return;
        };
        let funding_high = ctx
            .funding_rate()
            .is_some_and(|rate| rate > self.max_funding_rate);
        if let Some((prev_fast, prev_slow)) = self.previous {
            let bullish = crossed_above(prev_fast, prev_slow, fast, slow);
            let bearish = crossed_below(prev_fast, prev_slow, fast, slow);
            if ctx.is_flat() && bullish && !funding_high {
                ctx.buy_all();
            } else if ctx.is_long() && (bearish || funding_high) {
                ctx.close_position();
            }
        }
        self.previous = Some((fast, slow));
        if !ctx.pending_actions().is_empty() {
            return;
        }
        if let Some(stop) = self.wanted_stop(ctx) {
            if ctx.stop_loss().is_none_or(|current| stop > current) {
                log(
                    Level::Info,
                    &format!(
                        "bar {}: stop-loss {stop} (liquidation at {})",
                        bar.index,
                        ctx.liquidation_price().unwrap_or(f64::NAN)
                    ),
                );
                ctx.set_stop_loss(Some(stop));
            }
        }
    }
}

export_strategy!(FundingAware);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::Harness;

    fn harness() -> Harness<FundingAware> {
        Harness::new(&[
            ("fast_period", ParamValue::Int(2)),
            ("slow_period", ParamValue::Int(4)),
            ("max_funding_rate", ParamValue::Float(0.0005)),
            ("liq_buffer", ParamValue::Float(0.5)),
        ])
        .unwrap()
    }

    fn buy() -> Vec<Action> {
        vec![Action::Submit(Order::market(
            Side::Buy,
            Quantity::Equity(1.0),
        ))]
    }

    /// Falling closes keep the fast EMA under the slow one; the next close
    /// of 12 crosses it above.
    fn fall(h: &mut Harness<FundingAware>) {
        for close in [10.0, 9.0, 8.0, 7.0] {
            assert!(h.feed_close(close).is_empty());
        }
    }

    #[test]
    fn on_spot_it_trades_like_the_ema_crossover() {
        let mut h = harness();
        fall(&mut h);
        assert_eq!(h.feed_close(12.0), buy());
        h.portfolio_mut().position = 1.0;
        h.portfolio_mut().entry_price = 12.0;
        assert!(h.feed_close(13.0).is_empty());
        assert_eq!(h.feed_close(5.0), vec![Action::ClosePosition]);
    }

    #[test]
    fn high_funding_blocks_the_long_and_low_funding_allows_it() {
        let mut h = harness();
        h.set_market(Market::LinearPerpetual);
        h.set_funding_rate(Some(0.001));
        fall(&mut h);
        assert!(h.feed_close(12.0).is_empty(), "long opened at 0.1% funding");

        let mut h = harness();
        h.set_market(Market::LinearPerpetual);
        h.set_funding_rate(Some(0.0005));
        fall(&mut h);
        assert_eq!(h.feed_close(12.0), buy(), "at the threshold it may buy");
    }

    #[test]
    fn a_long_is_closed_when_funding_turns_high() {
        let mut h = harness();
        h.set_market(Market::LinearPerpetual);
        fall(&mut h);
        assert_eq!(h.feed_close(12.0), buy());
        h.portfolio_mut().position = 1.0;
        h.portfolio_mut().entry_price = 12.0;
        h.set_funding_rate(Some(0.002));
        assert_eq!(h.feed_close(13.0), vec![Action::ClosePosition]);
    }

    #[test]
    fn the_stop_sits_between_liquidation_and_entry_and_only_tightens() {
        let mut h = harness();
        h.set_market(Market::LinearPerpetual);
        fall(&mut h);
        assert_eq!(h.feed_close(12.0), buy());
        h.portfolio_mut().position = 1.0;
        h.portfolio_mut().entry_price = 12.0;
        h.set_liquidation_price(Some(10.0));
        // Halfway from 10 to 12.
        assert_eq!(h.feed_close(13.0), vec![Action::SetStopLoss(Some(11.0))]);
        h.portfolio_mut().stop_loss = Some(11.0);
        assert!(h.feed_close(13.5).is_empty(), "the same stop again");
        // Funding ate margin: liquidation moved up, so does the stop.
        h.set_liquidation_price(Some(10.5));
        assert_eq!(h.feed_close(14.0), vec![Action::SetStopLoss(Some(11.25))]);
        h.portfolio_mut().stop_loss = Some(11.25);
        h.set_liquidation_price(Some(10.0));
        assert!(h.feed_close(14.5).is_empty(), "a stop never loosens");
    }

    #[test]
    fn no_stop_without_a_liquidation_price_or_with_a_zero_buffer() {
        let mut h = harness();
        fall(&mut h);
        assert_eq!(h.feed_close(12.0), buy());
        h.portfolio_mut().position = 1.0;
        h.portfolio_mut().entry_price = 12.0;
        assert!(h.feed_close(13.0).is_empty());

        let mut h = Harness::<FundingAware>::new(&[
            ("fast_period", ParamValue::Int(2)),
            ("slow_period", ParamValue::Int(4)),
            ("liq_buffer", ParamValue::Float(0.0)),
        ])
        .unwrap();
        h.set_market(Market::LinearPerpetual);
        fall(&mut h);
        assert_eq!(h.feed_close(12.0), buy());
        h.portfolio_mut().position = 1.0;
        h.portfolio_mut().entry_price = 12.0;
        h.set_liquidation_price(Some(10.0));
        assert!(h.feed_close(13.0).is_empty());
    }
}
