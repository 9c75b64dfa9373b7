//! Test plugin (not an attack, kept with the sandbox's test plugins): a
//! contract 0.2.0 probe of the market state.
//!
//! It logs `market=<m> lp=<bits> funding=<bits>` on every bar where what it
//! reads differs from the bar before, so a test can see exactly what the
//! host passed and from which bar on (bits, not decimals, so the check is
//! exact). It buys all in on bar `buy_at` (run index), so a test can see
//! whether the guest filled that order itself (spot) or handed it to the
//! host (perpetual).

use stratbox_sdk::prelude::*;

pub struct MarketProbe {
    buy_at: u64,
    last: Option<String>,
}

/// What the strategy reads of the market state, as one log line.
pub fn describe_state(ctx: &Context<'_>) -> String {
    let market = match ctx.market() {
        Market::Spot => "spot",
        Market::LinearPerpetual => "linear_perpetual",
    };
    let bits = |v: Option<f64>| v.map_or("none".to_string(), |v| format!("{:016x}", v.to_bits()));
    format!(
        "market={market} lp={} funding={}",
        bits(ctx.liquidation_price()),
        bits(ctx.funding_rate())
    )
}

impl Strategy for MarketProbe {
    fn describe() -> Description {
        Description::new(
            "test: market probe",
            env!("CARGO_PKG_VERSION"),
            "Logs the market state it reads whenever it changes; buys on bar buy_at",
        )
        .param(
            ParamSpec::int("buy_at", 2)
                .range(0.0, 1e9)
                .help("Run index of the bar to buy on"),
        )
        .columns(&[Column::Close])
    }

    fn new(params: &Params) -> Result<Self, String> {
        Ok(Self {
            buy_at: params.int("buy_at")? as u64,
            last: None,
        })
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut Context<'_>) {
        let state = describe_state(ctx);
        if self.last.as_deref() != Some(state.as_str()) {
            log(Level::Info, &format!("bar={} {state}", bar.index));
            self.last = Some(state);
        }
        if bar.index == self.buy_at && ctx.is_flat() {
            ctx.buy_all();
        }
    }
}

export_strategy!(MarketProbe);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::Harness;

    #[test]
    fn buys_on_its_bar_and_reads_what_the_harness_sets() {
        let mut h = Harness::<MarketProbe>::new(&[("buy_at", ParamValue::Int(1))]).unwrap();
        assert!(h.feed_close(10.0).is_empty());
        h.set_market(Market::LinearPerpetual);
        h.set_liquidation_price(Some(87.5));
        h.set_funding_rate(Some(0.0001));
        assert_eq!(
            h.feed_close(10.0),
            vec![Action::Submit(Order::market(
                Side::Buy,
                Quantity::Equity(1.0)
            ))]
        );
        assert_eq!(
            h.strategy().last.as_deref().unwrap(),
            "market=linear_perpetual lp=4055e00000000000 funding=3f1a36e2eb1c432d"
        );
    }
}
