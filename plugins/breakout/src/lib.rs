//! "Donchian Breakout": resting stop entries at the edges of a price channel.
//!
//! The channel is the highest high and lowest low of the last `channel`
//! bars up to the bar just closed, i.e. the bars before the one on which
//! the stop can fill (never that bar itself). While flat it keeps an
//! all-in buy stop resting at the channel high (and, with `allow_short`, a
//! sell stop at the channel low), each carrying a stop-loss `stop_atr` ATRs
//! and a take-profit `target_atr` ATRs from its entry price. The orders are
//! only cancelled and placed again when the channel moves, so a quiet bar
//! costs no host round trip. Once an entry fills, the other side's stop is
//! cancelled and the position runs until its stop-loss or take-profit.

use stratbox_sdk::prelude::*;

/// Largest channel, bounding the ring buffer.
const MAX_CHANNEL: i64 = 500;
/// Largest ATR period.
const MAX_ATR_PERIOD: i64 = 200;

/// The high and low of the last `cap` bars, oldest overwritten first.
struct Channel {
    bars: Vec<(f64, f64)>,
    cap: usize,
    /// Slot the next bar goes to once the buffer is full.
    next: usize,
}

impl Channel {
    fn new(cap: usize) -> Self {
        Self {
            bars: Vec::with_capacity(cap),
            cap,
            next: 0,
        }
    }

    fn push(&mut self, high: f64, low: f64) {
        if self.bars.len() < self.cap {
            self.bars.push((high, low));
        } else {
            if let Some(slot) = self.bars.get_mut(self.next) {
                *slot = (high, low);
            }
            self.next = (self.next + 1) % self.cap;
        }
    }

    /// `(highest high, lowest low)` once `cap` bars have been seen.
    fn range(&self) -> Option<(f64, f64)> {
        if self.bars.len() < self.cap {
            return None;
        }
        Some(
            self.bars
                .iter()
                .fold((f64::NEG_INFINITY, f64::INFINITY), |(hi, lo), &(h, l)| {
                    (hi.max(h), lo.min(l))
                }),
        )
    }
}

pub struct Breakout {
    channel: Channel,
    atr: Atr,
    stop_atr: f64,
    target_atr: f64,
    allow_short: bool,
    /// Levels of the entry stops resting now (the low only when shorting),
    /// with how many were placed; `None` when none of ours rest.
    placed: Option<((f64, Option<f64>), u32)>,
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

/// The host rejects non-positive or non-finite prices (ending the run).
fn valid_price(p: f64) -> bool {
    p.is_finite() && p > 0.0
}

impl Breakout {
    /// An all-in stop entry at `price` with its exits `risk` and `reward`
    /// away (below and above for a buy, mirrored for a sell). An exit that
    /// would not be a valid price is left off; `None` if the entry is not.
    fn entry(&self, side: Side, price: f64, atr: f64) -> Option<Order> {
        if !valid_price(price) {
            return None;
        }
        let sign = match side {
            Side::Buy => 1.0,
            Side::Sell => -1.0,
        };
        let stop_loss = price - sign * self.stop_atr * atr;
        let take_profit = price + sign * self.target_atr * atr;
        let mut order = Order::stop(side, Quantity::Equity(1.0), price);
        if valid_price(stop_loss) {
            order = order.stop_loss(stop_loss);
        }
        if valid_price(take_profit) {
            order = order.take_profit(take_profit);
        }
        Some(order)
    }
}

impl Strategy for Breakout {
    fn describe() -> Description {
        Description::new(
            "Donchian Breakout",
            env!("CARGO_PKG_VERSION"),
            "Stop entries at the channel high (and low), with ATR-sized stop-loss and take-profit",
        )
        .param(
            ParamSpec::int("channel", 20)
                .range(2.0, MAX_CHANNEL as f64)
                .step(1.0)
                .help("Bars in the Donchian channel"),
        )
        .param(
            ParamSpec::int("atr_period", 14)
                .range(2.0, MAX_ATR_PERIOD as f64)
                .step(1.0)
                .help("Bars in the ATR (Wilder smoothing)"),
        )
        .param(
            ParamSpec::float("stop_atr", 2.0)
                .range(0.1, 20.0)
                .step(0.1)
                .help("Stop-loss distance from the entry, in ATRs"),
        )
        .param(
            ParamSpec::float("target_atr", 4.0)
                .range(0.1, 50.0)
                .step(0.1)
                .help("Take-profit distance from the entry, in ATRs"),
        )
        .param(
            ParamSpec::bool("allow_short", true).help("Also rest a sell stop at the channel low"),
        )
        .columns(&[Column::High, Column::Low, Column::Close])
    }

    fn new(params: &Params) -> Result<Self, String> {
        let channel = params.int("channel")?;
        let atr_period = params.int("atr_period")?;
        let stop_atr = params.float("stop_atr")?;
        let target_atr = params.float("target_atr")?;
        let allow_short = params.bool("allow_short")?;
        if !(2..=MAX_CHANNEL).contains(&channel) {
            return Err(format!(
                "channel must be between 2 and {MAX_CHANNEL} bars, got {channel}"
            ));
        }
        if !(2..=MAX_ATR_PERIOD).contains(&atr_period) {
            return Err(format!(
                "atr_period must be between 2 and {MAX_ATR_PERIOD} bars, got {atr_period}"
            ));
        }
        check_range("stop_atr", stop_atr, 0.1, 20.0)?;
        check_range("target_atr", target_atr, 0.1, 50.0)?;
        Ok(Self {
            channel: Channel::new(channel as usize),
            atr: Atr::new(atr_period as usize),
            stop_atr,
            target_atr,
            allow_short,
            placed: None,
        })
    }

    fn on_bar(&mut self, bar: &Bar, ctx: &mut Context<'_>) {
        let atr = self.atr.update(bar.high, bar.low, bar.close);
        self.channel.push(bar.high, bar.low);

        if !ctx.is_flat() {
            // One side filled; the other must not reverse the position.
            if ctx.open_orders() > 0 {
                ctx.cancel_orders();
            }
            self.placed = None;
            return;
        }

        let (Some(atr), Some((high, low))) = (atr, self.channel.range()) else {
            return;
        };
        let levels = (high, self.allow_short.then_some(low));
        // Same channel and every order still resting: nothing to do. A
        // count mismatch means one filled and its position already closed,
        // or something else cancelled them: place them again.
        if let Some((placed_levels, count)) = self.placed {
            if placed_levels == levels && count == ctx.open_orders() {
                return;
            }
        }

        let mut orders = Vec::with_capacity(2);
        orders.extend(self.entry(Side::Buy, high, atr));
        if self.allow_short {
            orders.extend(self.entry(Side::Sell, low, atr));
        }
        if ctx.open_orders() > 0 {
            ctx.cancel_orders();
        }
        self.placed = Some((levels, orders.len() as u32));
        for order in orders {
            ctx.submit(order);
        }
    }
}

export_strategy!(Breakout);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use stratbox_sdk::testing::Harness;

    /// Channel of 3 bars, ATR(2), 1 ATR stop, 2 ATR target.
    fn harness(allow_short: bool) -> Harness<Breakout> {
        Harness::new(&[
            ("channel", ParamValue::Int(3)),
            ("atr_period", ParamValue::Int(2)),
            ("stop_atr", ParamValue::Float(1.0)),
            ("target_atr", ParamValue::Float(2.0)),
            ("allow_short", ParamValue::Bool(allow_short)),
        ])
        .unwrap()
    }

    fn bar(index: u64, high: f64, low: f64) -> Bar {
        let mid = (high + low) / 2.0;
        Bar {
            index,
            ts: index as i64,
            open: mid,
            high,
            low,
            close: mid,
            volume: 0.0,
        }
    }

    fn stop(side: Side, price: f64, stop_loss: f64, take_profit: f64) -> Action {
        Action::Submit(
            Order::stop(side, Quantity::Equity(1.0), price)
                .stop_loss(stop_loss)
                .take_profit(take_profit),
        )
    }

    /// Three bars of range 2 around 10 (channel 11/9): every true range is
    /// 2, so the ATR is 2 once ready.
    fn warm_up(h: &mut Harness<Breakout>) -> Vec<Action> {
        assert!(h.feed(bar(0, 11.0, 9.0)).is_empty());
        assert!(h.feed(bar(1, 11.0, 9.0)).is_empty());
        h.feed(bar(2, 11.0, 9.0))
    }

    #[test]
    fn places_both_stops_once_warm_with_atr_exits() {
        let mut h = harness(true);
        assert_eq!(
            warm_up(&mut h),
            vec![
                stop(Side::Buy, 11.0, 9.0, 15.0),
                stop(Side::Sell, 9.0, 11.0, 5.0),
            ]
        );
    }

    #[test]
    fn replaces_orders_only_when_the_channel_moves() {
        let mut h = harness(false);
        assert_eq!(warm_up(&mut h), vec![stop(Side::Buy, 11.0, 9.0, 15.0)]);
        h.portfolio_mut().open_orders = 1;
        // Inside the channel: no round trip.
        assert!(h.feed(bar(3, 10.5, 9.5)).is_empty());
        assert!(h.feed(bar(4, 10.5, 9.5)).is_empty());
        // The 11.0 highs have rolled out of the 3-bar window: the channel
        // high falls to 10.5. ATR(2): (2 + 1)/2 = 1.5, then (1.5 + 1)/2 = 1.25,
        // then (1.25 + 1)/2 = 1.125.
        let atr = 1.125;
        assert_eq!(
            h.feed(bar(5, 10.5, 9.5)),
            vec![
                Action::CancelOrders,
                stop(Side::Buy, 10.5, 10.5 - atr, 10.5 + 2.0 * atr),
            ]
        );
    }

    #[test]
    fn cancels_the_other_side_once_in_a_position() {
        let mut h = harness(true);
        assert_eq!(warm_up(&mut h).len(), 2);
        // The buy stop filled on bar 3; the sell stop still rests.
        let p = h.portfolio_mut();
        p.open_orders = 1;
        p.position = 1.0;
        p.entry_price = 11.0;
        assert_eq!(h.feed(bar(3, 12.0, 10.5)), vec![Action::CancelOrders]);
        h.portfolio_mut().open_orders = 0;
        assert!(h.feed(bar(4, 12.5, 11.5)).is_empty());
    }

    #[test]
    fn replaces_both_stops_after_the_position_closes() {
        let mut h = harness(true);
        assert_eq!(warm_up(&mut h).len(), 2);
        h.portfolio_mut().position = 1.0;
        h.portfolio_mut().open_orders = 1;
        assert_eq!(h.feed(bar(3, 11.0, 9.0)), vec![Action::CancelOrders]);
        // Stopped out: flat, nothing rests, same channel. Entries go back.
        let p = h.portfolio_mut();
        p.position = 0.0;
        p.open_orders = 0;
        assert_eq!(
            h.feed(bar(4, 11.0, 9.0)),
            vec![
                stop(Side::Buy, 11.0, 9.0, 15.0),
                stop(Side::Sell, 9.0, 11.0, 5.0),
            ]
        );
    }

    #[test]
    fn rejects_bad_params() {
        let err = Harness::<Breakout>::new(&[("channel", ParamValue::Int(1))])
            .err()
            .unwrap();
        assert!(err.contains("channel must be between"), "{err}");
        let err = Harness::<Breakout>::new(&[("stop_atr", ParamValue::Float(0.0))])
            .err()
            .unwrap();
        assert!(err.contains("stop_atr"), "{err}");
    }
}
