//! The perpetual account: one isolated-margin position in one-way mode,
//! its wallet, fills, funding and liquidation (docs/conventions/engine.md,
//! "Perpetual futures"). The spot broker (`crate::broker`) is untouched:
//! a run picks one of the two once, before its first bar.

use std::collections::BTreeMap;

use super::funding::FundingClock;
use super::instrument::Instrument;
use super::margin::{bankruptcy_price, floor_step, initial_margin, liquidation_price};
use super::mark::{Extremes, MarkView};
use crate::broker::{closing_side, set_exit, touch_above, touch_below, Pending};
use crate::candles::Candles;
use crate::report::{ExitReason, Trade, TradeSide};
use crate::strategy::{
    Action, Fill, FillReason, Market, Order, OrderKind, PortfolioView, Quantity, Side,
};

/// Bars scanned ahead at least, per strategy call.
const MIN_PERP_SCAN: usize = 512;

/// Reasons an order is refused, as the report names them.
pub const BELOW_MIN_QTY: &str = "below_min_qty";
pub const INSUFFICIENT_MARGIN: &str = "insufficient_margin";

/// Which fee a fill pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Liquidity {
    Maker,
    Taker,
}

#[derive(Debug)]
pub(crate) struct PerpBroker {
    instrument: Instrument,
    leverage: f64,
    slippage_bps: f64,
    /// Free balance: what is not margin of the position.
    pub wallet: f64,
    /// Signed quantity.
    pub position: f64,
    pub entry_price: f64,
    /// Position margin (IM, less funding the wallet could not pay).
    pub pm: f64,
    /// Liquidation price of the open position (NaN when flat).
    pub lp: f64,
    entry_ts: i64,
    entry_bar: usize,
    entry_reason: FillReason,
    entry_fees: f64,
    /// Funding paid by the open position so far (positive = paid).
    entry_funding: f64,
    stop_loss: Option<f64>,
    take_profit: Option<f64>,
    market: Vec<Pending>,
    spare: Vec<Pending>,
    /// Limit and stop entries with the bar at whose close they were placed.
    resting: Vec<(Order, usize)>,
    pub fills: Vec<Fill>,
    pub trades: Vec<Trade>,
    pub fees_paid: f64,
    pub fees_maker: f64,
    pub fees_taker: f64,
    pub funding_paid: f64,
    pub liquidations: u64,
    pub rejected: BTreeMap<String, u64>,
    pub funding: FundingClock,
    /// The first bar at or after the next funding time, and that time:
    /// found by walking forward when the time changes (each bar walked
    /// over once per run), not by a binary search per call, whose cache
    /// misses cost half the loop's speed.
    funding_bar: usize,
    funding_bar_ts: i64,
}

impl PerpBroker {
    pub fn new(
        initial_capital: f64,
        instrument: Instrument,
        leverage: f64,
        slippage_bps: f64,
        funding: FundingClock,
    ) -> Self {
        Self {
            instrument,
            leverage,
            slippage_bps,
            wallet: initial_capital,
            position: 0.0,
            entry_price: 0.0,
            pm: 0.0,
            lp: f64::NAN,
            entry_ts: 0,
            entry_bar: 0,
            entry_reason: FillReason::Market,
            entry_fees: 0.0,
            entry_funding: 0.0,
            stop_loss: None,
            take_profit: None,
            market: Vec::new(),
            spare: Vec::new(),
            resting: Vec::new(),
            fills: Vec::new(),
            trades: Vec::new(),
            fees_paid: 0.0,
            fees_maker: 0.0,
            fees_taker: 0.0,
            funding_paid: 0.0,
            liquidations: 0,
            rejected: BTreeMap::new(),
            funding,
            funding_bar: 0,
            funding_bar_ts: i64::MIN,
        }
    }

    /// The cash figure for marking equity at a close `c`: equity =
    /// wallet + PM + position x (c - entry) = `mark_cash() + position x c`.
    pub fn mark_cash(&self) -> f64 {
        if self.position == 0.0 {
            self.wallet
        } else {
            self.wallet + self.pm - self.position * self.entry_price
        }
    }

    pub fn view(&self) -> PortfolioView<'_> {
        PortfolioView {
            // The strategy's `cash` is the free balance.
            cash: self.wallet,
            position: self.position,
            entry_price: self.entry_price,
            stop_loss: self.stop_loss,
            take_profit: self.take_profit,
            open_orders: self.resting.len() as u32,
            commission: self.instrument.taker_fee,
            leverage: self.leverage,
            slippage_bps: self.slippage_bps,
            fills: &self.fills,
            market: Market::LinearPerpetual,
            liquidation_price: (self.position != 0.0).then_some(self.lp),
            funding_rate: self.funding.latest(),
        }
    }

    /// (side, qty, entry price, entry ts, entry fees) of the open position.
    pub fn open_position(&self) -> Option<(TradeSide, f64, f64, i64, f64)> {
        (self.position != 0.0).then(|| {
            let side = if self.position > 0.0 {
                TradeSide::Long
            } else {
                TradeSide::Short
            };
            let qty = self.position.abs();
            (side, qty, self.entry_price, self.entry_ts, self.entry_fees)
        })
    }

    /// Applies the strategy's actions, taken at the close of `bar`.
    pub fn apply(&mut self, actions: &[Action], bar: usize) -> Result<(), String> {
        for action in actions {
            match *action {
                Action::Submit(order) => {
                    crate::broker::check_order(&order)?;
                    match order.kind {
                        OrderKind::Market => self.market.push(Pending::Order(order)),
                        OrderKind::Limit(_) | OrderKind::Stop(_) => self.resting.push((order, bar)),
                    }
                }
                Action::ClosePosition => self.market.push(Pending::Close),
                Action::CancelOrders => self.resting.clear(),
                Action::SetStopLoss(price) => set_exit(
                    "stop-loss",
                    price,
                    self.position == 0.0,
                    &mut self.market,
                    &mut self.stop_loss,
                    |order| &mut order.stop_loss,
                )?,
                Action::SetTakeProfit(price) => set_exit(
                    "take-profit",
                    price,
                    self.position == 0.0,
                    &mut self.market,
                    &mut self.take_profit,
                    |order| &mut order.take_profit,
                )?,
            }
        }
        Ok(())
    }

    /// Everything that happens on bar `i`, in this order: funding due at
    /// its open; liquidation at the open if the mark open is beyond LP;
    /// market orders at the open; the position's stop-loss and take-profit
    /// that lie before LP on the bar's path; liquidation if the adverse
    /// mark extreme reaches LP; the other exits; resting entries, oldest
    /// first (then liquidation again if a resting fill moved LP within
    /// the bar's range).
    pub fn fill_bar(&mut self, candles: &Candles, mark: &MarkView<'_>, i: usize) {
        let ts = candles.ts[i];
        while self.funding.next_ts() <= ts {
            let (t, rate) = self.funding.pop();
            if self.position != 0.0 {
                // Mark at t: the open of the bar starting at t, else the
                // close of the last bar before t.
                let mark_t = if t == ts || i == 0 {
                    mark.open[i]
                } else {
                    mark.close[i - 1]
                };
                self.settle_funding(mark_t, rate);
            }
        }
        let next_funding = self.funding.next_ts();
        if next_funding != self.funding_bar_ts {
            // Galloping from bar i: a funding time is usually a few hundred
            // bars ahead, so this reads a few cache lines, not the stretch.
            let ts_all = &candles.ts;
            let mut step = 1;
            while i + step < ts_all.len() && ts_all[i + step] < next_funding {
                step *= 2;
            }
            let lo = i + step / 2;
            let hi = (i + step).min(ts_all.len());
            self.funding_bar = lo + ts_all[lo..hi].partition_point(|&t| t < next_funding);
            self.funding_bar_ts = next_funding;
        }
        if self.position != 0.0 && self.beyond_lp(mark.open[i]) {
            self.liquidate(ts, i);
        }
        let open = candles.open[i];
        let mut market = std::mem::take(&mut self.spare);
        std::mem::swap(&mut market, &mut self.market);
        for pending in market.drain(..) {
            match pending {
                Pending::Close => {
                    if self.position != 0.0 {
                        let side = closing_side(self.position);
                        let price = self.slipped(open, side);
                        let qty = self.position.abs();
                        self.close(
                            ts,
                            i,
                            qty,
                            price,
                            FillReason::ClosePosition,
                            Liquidity::Taker,
                        );
                    }
                }
                Pending::Order(order) => {
                    let price = self.slipped(open, order.side);
                    self.execute(ts, i, &order, price, FillReason::Market, Liquidity::Taker);
                }
            }
        }
        self.spare = market;
        if self.position != 0.0 {
            self.check_exits(candles, mark, i);
        }
        if self.resting.is_empty() {
            return;
        }
        let (high, low) = (candles.high[i], candles.low[i]);
        let mut filled = false;
        let mut k = 0;
        while k < self.resting.len() {
            let (order, placed) = self.resting[k];
            let trigger = match (order.kind, order.side) {
                (OrderKind::Limit(p), Side::Buy) => touch_below(open, low, p, FillReason::Limit),
                (OrderKind::Limit(p), Side::Sell) => touch_above(open, high, p, FillReason::Limit),
                (OrderKind::Stop(p), Side::Buy) => touch_above(open, high, p, FillReason::Stop),
                (OrderKind::Stop(p), Side::Sell) => touch_below(open, low, p, FillReason::Stop),
                (OrderKind::Market, _) => None,
            };
            match trigger {
                Some((price, reason)) => {
                    self.resting.remove(k);
                    let (price, liquidity) = if reason == FillReason::Stop {
                        (self.slipped(price, order.side), Liquidity::Taker)
                    } else if price == open && i == placed + 1 {
                        // Filled at the first open after it was placed: it
                        // crossed the book on arrival, so it took liquidity.
                        (price, Liquidity::Taker)
                    } else {
                        (price, Liquidity::Maker)
                    };
                    self.execute(ts, i, &order, price, reason, liquidity);
                    filled = true;
                }
                None => k += 1,
            }
        }
        // A position opened or grown here: its exits wait for the next bar
        // (as on spot), but a mark extreme of this bar beyond its LP
        // liquidates it now, so equity never goes below zero.
        if filled && self.position != 0.0 {
            let adverse = if self.position > 0.0 {
                mark.low[i]
            } else {
                mark.high[i]
            };
            if self.beyond_lp(adverse) {
                self.liquidate(ts, i);
            }
        }
    }

    /// Whether mark price `m` is at or beyond the liquidation price.
    #[inline]
    fn beyond_lp(&self, m: f64) -> bool {
        if self.position > 0.0 {
            m <= self.lp
        } else {
            m >= self.lp
        }
    }

    /// Pays (or receives) one funding: `qty x mark x rate`, positive paid
    /// by a long when the rate is positive. A payment comes from the
    /// wallet, the part it cannot cover from PM (LP then recomputed);
    /// receipts go to the wallet.
    fn settle_funding(&mut self, mark: f64, rate: f64) {
        let payment = self.position * mark * rate;
        self.funding_paid += payment;
        self.entry_funding += payment;
        if payment <= self.wallet {
            self.wallet -= payment;
        } else {
            let shortfall = payment - self.wallet;
            self.wallet = 0.0;
            self.pm = (self.pm - shortfall).max(0.0);
            self.update_lp();
        }
    }

    fn update_lp(&mut self) {
        self.lp = if self.position == 0.0 {
            f64::NAN
        } else {
            liquidation_price(
                &self.instrument,
                self.position > 0.0,
                self.position.abs(),
                self.entry_price,
                self.pm,
            )
        };
    }

    /// The position's exits and liquidation on bar `i` (docs: "Trigger").
    fn check_exits(&mut self, candles: &Candles, mark: &MarkView<'_>, i: usize) {
        let (open, high, low) = (candles.open[i], candles.high[i], candles.low[i]);
        let long = self.position > 0.0;
        let lp = self.lp;
        let (sl, tp) = (self.stop_loss, self.take_profit);
        // A stop-loss lies before LP on the way down (long) or up (short).
        let sl_first = sl.filter(|&s| if long { s > lp } else { s < lp });
        let mark_adverse = if long { mark.low[i] } else { mark.high[i] };
        let hit = if long {
            match (sl, tp) {
                (Some(s), _) if open <= s => Some((open, FillReason::StopLoss)),
                (_, Some(t)) if open >= t => Some((open, FillReason::TakeProfit)),
                _ if matches!(sl_first, Some(s) if low <= s) => {
                    sl_first.map(|s| (s, FillReason::StopLoss))
                }
                _ if mark_adverse <= lp => None,
                (Some(s), _) if low <= s => Some((s, FillReason::StopLoss)),
                (_, Some(t)) if high >= t => Some((t, FillReason::TakeProfit)),
                _ => return,
            }
        } else {
            match (sl, tp) {
                (Some(s), _) if open >= s => Some((open, FillReason::StopLoss)),
                (_, Some(t)) if open <= t => Some((open, FillReason::TakeProfit)),
                _ if matches!(sl_first, Some(s) if high >= s) => {
                    sl_first.map(|s| (s, FillReason::StopLoss))
                }
                _ if mark_adverse >= lp => None,
                (Some(s), _) if high >= s => Some((s, FillReason::StopLoss)),
                (_, Some(t)) if low <= t => Some((t, FillReason::TakeProfit)),
                _ => return,
            }
        };
        match hit {
            Some((price, reason)) => {
                let side = closing_side(self.position);
                let price = if reason == FillReason::StopLoss {
                    self.slipped(price, side)
                } else {
                    price
                };
                let qty = self.position.abs();
                self.close(candles.ts[i], i, qty, price, reason, Liquidity::Taker);
            }
            None => self.liquidate(candles.ts[i], i),
        }
    }

    fn slipped(&self, price: f64, side: Side) -> f64 {
        if self.slippage_bps == 0.0 {
            return price;
        }
        price * (1.0 + side.sign() * self.slippage_bps / 10_000.0)
    }

    fn fee_rate(&self, liquidity: Liquidity) -> f64 {
        match liquidity {
            Liquidity::Maker => self.instrument.maker_fee,
            Liquidity::Taker => self.instrument.taker_fee,
        }
    }

    fn reject(&mut self, reason: &str) {
        *self.rejected.entry(reason.to_string()).or_insert(0) += 1;
    }

    fn execute(
        &mut self,
        ts: i64,
        bar: usize,
        order: &Order,
        price: f64,
        reason: FillReason,
        liquidity: Liquidity,
    ) {
        let side = order.side;
        let opposite = self.position * side.sign() < 0.0;
        let rate = self.fee_rate(liquidity);
        let step = self.instrument.qty_step;
        let open_qty = match order.quantity {
            Quantity::Equity(fraction) => {
                if opposite {
                    let qty = self.position.abs();
                    self.close(ts, bar, qty, price, reason, liquidity);
                }
                // All in: floor_step(available x L / (price x (1 + L x taker))).
                let available = self.wallet * fraction;
                let qty = floor_step(
                    available * self.leverage
                        / (price * (1.0 + self.leverage * self.instrument.taker_fee)),
                    step,
                );
                if qty < self.instrument.min_qty {
                    self.reject(BELOW_MIN_QTY);
                    return;
                }
                qty
            }
            Quantity::Units(units) => {
                let qty = floor_step(units, step);
                if qty < self.instrument.min_qty {
                    self.reject(BELOW_MIN_QTY);
                    return;
                }
                let held = self.position.abs();
                let reduce = if opposite { qty.min(held) } else { 0.0 };
                let rest = qty - reduce;
                let rest = if rest < step * 0.5 { 0.0 } else { rest };
                if rest > 0.0 {
                    // The wallet after the reducing part, before opening.
                    let mut wallet = self.wallet;
                    if reduce > 0.0 {
                        let gross = (price - self.entry_price) * reduce * self.position.signum();
                        wallet += self.pm * (reduce / held) + gross - reduce * price * rate;
                    }
                    if self.needs(rest, price, rate) > wallet.max(0.0) {
                        self.reject(INSUFFICIENT_MARGIN);
                        return;
                    }
                }
                if reduce > 0.0 {
                    self.close(ts, bar, reduce, price, reason, liquidity);
                }
                rest
            }
        };
        let reversed_or_opened = self.position == 0.0;
        if open_qty > 0.0 {
            if self.needs(open_qty, price, rate) > self.wallet {
                self.reject(INSUFFICIENT_MARGIN);
                return;
            }
            self.open(ts, bar, side, open_qty, price, reason, liquidity);
        }
        if self.position != 0.0 {
            if reversed_or_opened {
                self.stop_loss = None;
                self.take_profit = None;
            }
            if order.stop_loss.is_some() {
                self.stop_loss = order.stop_loss;
            }
            if order.take_profit.is_some() {
                self.take_profit = order.take_profit;
            }
        }
    }

    /// Initial margin plus the opening fee of `qty` at `price`.
    fn needs(&self, qty: f64, price: f64, rate: f64) -> f64 {
        initial_margin(qty, price, self.leverage) + qty * price * rate
    }

    fn count_fee(&mut self, fee: f64, liquidity: Liquidity) {
        self.fees_paid += fee;
        match liquidity {
            Liquidity::Maker => self.fees_maker += fee,
            Liquidity::Taker => self.fees_taker += fee,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        ts: i64,
        bar: usize,
        side: Side,
        qty: f64,
        price: f64,
        reason: FillReason,
        liquidity: Liquidity,
    ) {
        let rate = self.fee_rate(liquidity);
        let im = initial_margin(qty, price, self.leverage);
        let fee = qty * price * rate;
        self.wallet -= im + fee;
        self.pm += im;
        if self.position == 0.0 {
            self.entry_price = price;
            self.entry_ts = ts;
            self.entry_bar = bar;
            self.entry_reason = reason;
        } else {
            let held = self.position.abs();
            self.entry_price = (self.entry_price * held + price * qty) / (held + qty);
        }
        self.position += side.sign() * qty;
        self.entry_fees += fee;
        self.count_fee(fee, liquidity);
        self.update_lp();
        self.fills.push(Fill {
            ts,
            side,
            qty,
            price,
            fee,
            reason,
        });
    }

    /// Closes `qty` (at most the whole position) at `price` and records
    /// the trade: its share of PM and the PnL go to the wallet, less the
    /// fee (a wallet that would go below zero stops at zero).
    fn close(
        &mut self,
        ts: i64,
        bar: usize,
        qty: f64,
        price: f64,
        reason: FillReason,
        liquidity: Liquidity,
    ) {
        let held = self.position.abs();
        let qty = qty.min(held);
        if qty <= 0.0 {
            return;
        }
        let rate = self.fee_rate(liquidity);
        let side = closing_side(self.position);
        let direction = self.position.signum();
        let whole = qty == held;
        let share = |v: f64| if whole { v } else { v * qty / held };
        let pm_share = share(self.pm);
        let fee_share = share(self.entry_fees);
        let funding_share = share(self.entry_funding);
        let gross = (price - self.entry_price) * qty * direction;
        let fee = qty * price * rate;
        self.wallet = (self.wallet + pm_share + gross - fee).max(0.0);
        self.count_fee(fee, liquidity);
        let fees = fee_share + fee;
        self.record_trade(
            ts,
            bar,
            qty,
            price,
            gross,
            fees,
            funding_share,
            reason.into(),
        );
        self.fills.push(Fill {
            ts,
            side,
            qty,
            price,
            fee,
            reason,
        });
        if whole {
            self.reset();
        } else {
            self.position -= direction * qty;
            self.pm -= pm_share;
            self.entry_fees -= fee_share;
            self.entry_funding -= funding_share;
            self.update_lp();
        }
    }

    /// Settles the whole position at its bankruptcy price: the position
    /// margin is lost, no closing fee; resting orders and exits are
    /// cancelled. The strategy sees the position gone (no fill).
    fn liquidate(&mut self, ts: i64, bar: usize) {
        let long = self.position > 0.0;
        let qty = self.position.abs();
        let price = bankruptcy_price(long, qty, self.entry_price, self.pm);
        // (bankruptcy - entry) x qty x direction = -PM exactly; the wallet
        // gets PM + that = nothing.
        let gross = -self.pm;
        self.liquidations += 1;
        let (fees, funding) = (self.entry_fees, self.entry_funding);
        self.record_trade(
            ts,
            bar,
            qty,
            price,
            gross,
            fees,
            funding,
            ExitReason::Liquidation,
        );
        self.resting.clear();
        self.reset();
    }

    #[allow(clippy::too_many_arguments)]
    fn record_trade(
        &mut self,
        ts: i64,
        bar: usize,
        qty: f64,
        price: f64,
        gross: f64,
        fees: f64,
        funding: f64,
        exit_reason: ExitReason,
    ) {
        let long = self.position > 0.0;
        let pnl = gross - fees - funding;
        self.trades.push(Trade {
            symbol: None,
            entry_ts: self.entry_ts,
            exit_ts: ts,
            side: if long {
                TradeSide::Long
            } else {
                TradeSide::Short
            },
            qty,
            entry_price: self.entry_price,
            exit_price: price,
            pnl,
            return_pct: pnl / (self.entry_price * qty) * 100.0,
            fees,
            entry_bar: self.entry_bar,
            exit_bar: bar,
            duration_secs: ts - self.entry_ts,
            entry_reason: self.entry_reason,
            exit_reason,
            funding: Some(funding),
            liquidation_price: Some(self.lp),
        });
    }

    fn reset(&mut self) {
        self.position = 0.0;
        self.entry_price = 0.0;
        self.entry_fees = 0.0;
        self.entry_funding = 0.0;
        self.pm = 0.0;
        self.lp = f64::NAN;
        self.stop_loss = None;
        self.take_profit = None;
    }

    /// First bar in `from..n` on which the account could change: a market
    /// order pending, a resting order or exit touched, the mark reaching
    /// LP, or a funding time reached (while a position is open, or always
    /// with a funding history, whose rate the strategy sees change).
    pub fn next_trigger(
        &self,
        candles: &Candles,
        mark: &MarkView<'_>,
        extremes: &ScanIndex,
        from: usize,
        n: usize,
        scan: usize,
    ) -> usize {
        if !self.market.is_empty() {
            return from.min(n);
        }
        let mut n = n;
        if self.position != 0.0 || self.funding.is_history() {
            // `fill_bar` found the bar of the next funding time.
            n = n.min(self.funding_bar.max(from));
        }
        // The block extremes make a long scan cheap, and a position always
        // watches its LP: scanning only as far as spot does would end
        // most calls early, each an extra strategy call.
        let limit = n.min(from.saturating_add(scan.max(MIN_PERP_SCAN)));
        let mut floor = f64::NEG_INFINITY;
        let mut ceiling = f64::INFINITY;
        let (from_above, from_below) = match self.position {
            p if p > 0.0 => (self.stop_loss, self.take_profit),
            p if p < 0.0 => (self.take_profit, self.stop_loss),
            _ => (None, None),
        };
        floor = from_above.map_or(floor, |p| floor.max(p));
        ceiling = from_below.map_or(ceiling, |p| ceiling.min(p));
        for (order, _) in &self.resting {
            match (order.kind, order.side) {
                (OrderKind::Limit(p), Side::Buy) | (OrderKind::Stop(p), Side::Sell) => {
                    floor = floor.max(p)
                }
                (OrderKind::Limit(p), Side::Sell) | (OrderKind::Stop(p), Side::Buy) => {
                    ceiling = ceiling.min(p)
                }
                (OrderKind::Market, _) => {}
            }
        }
        let (lp_floor, lp_ceiling) = match self.position {
            p if p > 0.0 => (self.lp, f64::INFINITY),
            p if p < 0.0 => (f64::NEG_INFINITY, self.lp),
            _ => (f64::NEG_INFINITY, f64::INFINITY),
        };
        if floor == f64::NEG_INFINITY
            && ceiling == f64::INFINITY
            && lp_floor == f64::NEG_INFINITY
            && lp_ceiling == f64::INFINITY
        {
            return n;
        }
        if mark.is_trade {
            // One pass: LP is one more price on the trade candles.
            return extremes.trade.first_touch(
                &candles.low,
                &candles.high,
                floor.max(lp_floor),
                ceiling.min(lp_ceiling),
                from,
                limit,
            );
        }
        let trade =
            extremes
                .trade
                .first_touch(&candles.low, &candles.high, floor, ceiling, from, limit);
        match &extremes.mark {
            Some(m) => m.first_touch(mark.low, mark.high, lp_floor, lp_ceiling, from, trade),
            None => trade,
        }
    }
}

/// Block extremes of the trade candles and, with a mark series, of the marks.
#[derive(Debug)]
pub(crate) struct ScanIndex {
    pub trade: Extremes,
    pub mark: Option<Extremes>,
}

impl ScanIndex {
    pub fn new(candles: &Candles, mark: &MarkView<'_>) -> Self {
        Self {
            trade: Extremes::new(&candles.low, &candles.high),
            mark: (!mark.is_trade).then(|| Extremes::new(mark.low, mark.high)),
        }
    }
}
