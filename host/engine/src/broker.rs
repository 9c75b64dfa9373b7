//! The simulated broker: cash, the one position, resting orders, fills and
//! closed trades. All prices and sizes follow docs/conventions/engine.md ("Fills", "Sizing").

use super::report::{Trade, TradeSide};
use super::strategy::{Action, Fill, FillReason, Order, OrderKind, PortfolioView, Quantity, Side};
use crate::candles::Candles;

/// Costs and limits of the simulated account.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Costs {
    /// Fraction of notional per fill.
    pub commission: f64,
    /// Adverse price move per market or stop fill, in basis points.
    pub slippage_bps: f64,
    pub leverage: f64,
}

const FLAT_EXIT: &str = "a {} set while flat with no market entry pending protects nothing; \
     attach it to the entry order instead";

/// An order placed on one bar, to fill on a later one.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pending {
    Order(Order),
    Close,
}

/// The rest of a portfolio's positions, as one symbol's broker sizes an
/// order (docs/conventions/engine.md, "Several symbols"): their value and
/// their notional at each one's last close. Zero in a single-symbol run,
/// where adding it changes no bit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Others {
    pub value: f64,
    pub notional: f64,
}

#[derive(Debug)]
pub(crate) struct Broker {
    costs: Costs,
    pub cash: f64,
    pub others: Others,
    /// Signed quantity.
    pub position: f64,
    pub entry_price: f64,
    entry_ts: i64,
    entry_bar: usize,
    entry_reason: FillReason,
    /// Commission paid on entry, not yet attributed to a closed trade.
    entry_fees: f64,
    stop_loss: Option<f64>,
    take_profit: Option<f64>,
    /// Fill at the next bar's open, in submission order.
    market: Vec<Pending>,
    /// Keeps `market`'s old allocation between bars.
    spare: Vec<Pending>,
    /// Limit and stop entry orders, good until cancelled, oldest first.
    resting: Vec<Order>,
    pub fills: Vec<Fill>,
    pub trades: Vec<Trade>,
    pub fees_paid: f64,
}

impl Broker {
    pub fn new(initial_capital: f64, costs: Costs) -> Self {
        Self {
            costs,
            cash: initial_capital,
            others: Others::default(),
            position: 0.0,
            entry_price: 0.0,
            entry_ts: 0,
            entry_bar: 0,
            entry_reason: FillReason::Market,
            entry_fees: 0.0,
            stop_loss: None,
            take_profit: None,
            market: Vec::new(),
            spare: Vec::new(),
            resting: Vec::new(),
            fills: Vec::new(),
            trades: Vec::new(),
            fees_paid: 0.0,
        }
    }

    pub fn view(&self) -> PortfolioView<'_> {
        PortfolioView {
            cash: self.cash,
            position: self.position,
            entry_price: self.entry_price,
            stop_loss: self.stop_loss,
            take_profit: self.take_profit,
            open_orders: self.resting.len() as u32,
            commission: self.costs.commission,
            leverage: self.costs.leverage,
            slippage_bps: self.costs.slippage_bps,
            fills: &self.fills,
            market: crate::strategy::Market::Spot,
            liquidation_price: None,
            funding_rate: None,
        }
    }

    /// The open position, if any: (side, qty, entry price, entry ts, entry bar, entry fees).
    pub fn open_position(&self) -> Option<(TradeSide, f64, f64, i64, usize, f64)> {
        (self.position != 0.0).then(|| {
            let side = if self.position > 0.0 {
                TradeSide::Long
            } else {
                TradeSide::Short
            };
            (
                side,
                self.position.abs(),
                self.entry_price,
                self.entry_ts,
                self.entry_bar,
                self.entry_fees,
            )
        })
    }

    /// Applies the strategy's actions, taken at the close of `bar`.
    pub fn apply(&mut self, actions: &[Action]) -> Result<(), String> {
        for action in actions {
            match *action {
                Action::Submit(order) => {
                    check_order(&order)?;
                    match order.kind {
                        OrderKind::Market => self.market.push(Pending::Order(order)),
                        OrderKind::Limit(_) | OrderKind::Stop(_) => self.resting.push(order),
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

    /// Everything that fills on bar `i`, in this order: market orders at
    /// the open; the position's stop-loss and take-profit (a gap through
    /// either fills at the open; when the bar touches both, the stop-loss
    /// is taken as hit first); then resting entry orders, oldest first.
    pub fn fill_bar(&mut self, candles: &Candles, i: usize) {
        let open = candles.open[i];
        // Swapped with a spare buffer, not taken: no allocation per order.
        let mut market = std::mem::take(&mut self.spare);
        std::mem::swap(&mut market, &mut self.market);
        for pending in market.drain(..) {
            match pending {
                Pending::Close => {
                    if self.position != 0.0 {
                        let side = closing_side(self.position);
                        let price = self.slipped(open, side);
                        self.close(
                            candles.ts[i],
                            i,
                            self.position.abs(),
                            price,
                            FillReason::ClosePosition,
                        );
                    }
                }
                Pending::Order(order) => {
                    let price = self.slipped(open, order.side);
                    self.execute(candles.ts[i], i, &order, price, FillReason::Market);
                }
            }
        }
        self.spare = market;
        self.check_exits(candles, i);
        if self.resting.is_empty() {
            return;
        }
        let (high, low) = (candles.high[i], candles.low[i]);
        let mut k = 0;
        while k < self.resting.len() {
            let order = self.resting[k];
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
                    let price = if reason == FillReason::Stop {
                        self.slipped(price, order.side)
                    } else {
                        price
                    };
                    self.execute(candles.ts[i], i, &order, price, reason);
                }
                None => k += 1,
            }
        }
    }

    /// First bar in `from..n` on which a resting order or an exit could
    /// fill, looking at most `scan` bars ahead; bars before it cannot change
    /// the account. With nothing resting, every bar up to `n` is safe.
    pub fn next_trigger(&self, candles: &Candles, from: usize, n: usize, scan: usize) -> usize {
        if !self.market.is_empty() {
            return from.min(n);
        }
        let limit = n.min(from.saturating_add(scan));
        // Nothing triggers while the low stays above `floor` and the high
        // below `ceiling`: prices hit from above (buy limits, sell stops, a
        // long's stop-loss, a short's take-profit) raise the floor; prices
        // hit from below lower the ceiling.
        let mut floor = f64::NEG_INFINITY;
        let mut ceiling = f64::INFINITY;
        let (from_above, from_below) = match self.position {
            p if p > 0.0 => (self.stop_loss, self.take_profit),
            p if p < 0.0 => (self.take_profit, self.stop_loss),
            _ => (None, None),
        };
        floor = from_above.map_or(floor, |p| floor.max(p));
        ceiling = from_below.map_or(ceiling, |p| ceiling.min(p));
        for order in &self.resting {
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
        if floor == f64::NEG_INFINITY && ceiling == f64::INFINITY {
            return n;
        }
        (from..limit)
            .find(|&j| candles.low[j] <= floor || candles.high[j] >= ceiling)
            .unwrap_or(limit)
    }

    fn check_exits(&mut self, candles: &Candles, i: usize) {
        if self.position == 0.0 || (self.stop_loss.is_none() && self.take_profit.is_none()) {
            return;
        }
        let (open, high, low) = (candles.open[i], candles.high[i], candles.low[i]);
        let long = self.position > 0.0;
        let hit = if long {
            match (self.stop_loss, self.take_profit) {
                (Some(sl), _) if open <= sl => Some((open, FillReason::StopLoss)),
                (_, Some(tp)) if open >= tp => Some((open, FillReason::TakeProfit)),
                (Some(sl), _) if low <= sl => Some((sl, FillReason::StopLoss)),
                (_, Some(tp)) if high >= tp => Some((tp, FillReason::TakeProfit)),
                _ => None,
            }
        } else {
            match (self.stop_loss, self.take_profit) {
                (Some(sl), _) if open >= sl => Some((open, FillReason::StopLoss)),
                (_, Some(tp)) if open <= tp => Some((open, FillReason::TakeProfit)),
                (Some(sl), _) if high >= sl => Some((sl, FillReason::StopLoss)),
                (_, Some(tp)) if low <= tp => Some((tp, FillReason::TakeProfit)),
                _ => None,
            }
        };
        if let Some((price, reason)) = hit {
            let side = closing_side(self.position);
            let price = if reason == FillReason::StopLoss {
                self.slipped(price, side)
            } else {
                price
            };
            self.close(candles.ts[i], i, self.position.abs(), price, reason);
        }
    }

    /// Market and stop fills move against the trader by the slippage.
    fn slipped(&self, price: f64, side: Side) -> f64 {
        if self.costs.slippage_bps == 0.0 {
            return price;
        }
        price * (1.0 + side.sign() * self.costs.slippage_bps / 10_000.0)
    }

    fn execute(&mut self, ts: i64, bar: usize, order: &Order, price: f64, reason: FillReason) {
        let side = order.side;
        let opposite = self.position * side.sign() < 0.0;
        let open_qty = match order.quantity {
            Quantity::Equity(fraction) => {
                if opposite {
                    self.close(ts, bar, self.position.abs(), price, reason);
                }
                let equity = self.cash + self.others.value + self.position * price;
                let wanted = equity * self.costs.leverage * fraction
                    / (price * (1.0 + self.costs.commission));
                wanted.min(self.headroom(price))
            }
            Quantity::Units(units) => {
                let mut units = units;
                if opposite {
                    let reduce = units.min(self.position.abs());
                    self.close(ts, bar, reduce, price, reason);
                    units -= reduce;
                }
                units.min(self.headroom(price))
            }
        };
        let reversed_or_opened = self.position == 0.0;
        if open_qty > 0.0 {
            self.open(ts, bar, side, open_qty, price, reason);
        }
        if self.position != 0.0 {
            if reversed_or_opened {
                // Exits belong to the position they were set for.
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

    /// Largest quantity that keeps position notional plus its commission
    /// within equity times leverage.
    fn headroom(&self, price: f64) -> f64 {
        let equity = self.cash + self.others.value + self.position * price;
        let used = self.others.notional + self.position.abs() * price;
        ((equity * self.costs.leverage - used) / (price * (1.0 + self.costs.commission))).max(0.0)
    }

    fn open(&mut self, ts: i64, bar: usize, side: Side, qty: f64, price: f64, reason: FillReason) {
        let notional = qty * price;
        let fee = notional * self.costs.commission;
        self.cash -= side.sign() * notional + fee;
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
        self.fees_paid += fee;
        self.fills.push(Fill {
            ts,
            side,
            qty,
            price,
            fee,
            reason,
        });
    }

    /// Closes `qty` (at most the whole position) and records the trade.
    fn close(&mut self, ts: i64, bar: usize, qty: f64, price: f64, reason: FillReason) {
        let held = self.position.abs();
        let qty = qty.min(held);
        if qty <= 0.0 {
            return;
        }
        let long = self.position > 0.0;
        let side = closing_side(self.position);
        let notional = qty * price;
        let fee = notional * self.costs.commission;
        self.cash += -side.sign() * notional - fee;
        let entry_fee_share = if qty == held {
            self.entry_fees
        } else {
            self.entry_fees * qty / held
        };
        let direction = if long { 1.0 } else { -1.0 };
        let gross = (price - self.entry_price) * qty * direction;
        let fees = entry_fee_share + fee;
        let pnl = gross - fees;
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
            exit_reason: reason.into(),
            funding: None,
            liquidation_price: None,
        });
        self.fees_paid += fee;
        self.fills.push(Fill {
            ts,
            side,
            qty,
            price,
            fee,
            reason,
        });
        if qty == held {
            self.position = 0.0;
            self.entry_price = 0.0;
            self.entry_fees = 0.0;
            self.stop_loss = None;
            self.take_profit = None;
        } else {
            self.position -= direction * qty;
            self.entry_fees -= entry_fee_share;
        }
    }
}

pub(crate) fn closing_side(position: f64) -> Side {
    if position > 0.0 {
        Side::Sell
    } else {
        Side::Buy
    }
}

/// A buy limit or sell stop at `p`: fills at the open if it gapped below,
/// else at `p` if the low reached it.
pub(crate) fn touch_below(
    open: f64,
    low: f64,
    p: f64,
    reason: FillReason,
) -> Option<(f64, FillReason)> {
    if open <= p {
        Some((open, reason))
    } else if low <= p {
        Some((p, reason))
    } else {
        None
    }
}

/// A sell limit or buy stop at `p`.
pub(crate) fn touch_above(
    open: f64,
    high: f64,
    p: f64,
    reason: FillReason,
) -> Option<(f64, FillReason)> {
    if open >= p {
        Some((open, reason))
    } else if high >= p {
        Some((p, reason))
    } else {
        None
    }
}

/// Sets a protective exit (`what`: stop-loss or take-profit) for both
/// brokers: set in the same step as a market entry, it belongs to the
/// position that entry opens (`on_order` picks the field of the order);
/// otherwise it is the open position's (`slot`). Set while flat with no
/// entry pending it would protect nothing, so that is refused.
pub(crate) fn set_exit(
    what: &str,
    price: Option<f64>,
    flat: bool,
    market: &mut [Pending],
    slot: &mut Option<f64>,
    on_order: fn(&mut Order) -> &mut Option<f64>,
) -> Result<(), String> {
    check_price(what, price)?;
    match market.last_mut() {
        Some(Pending::Order(order)) => *on_order(order) = price,
        _ if flat && price.is_some() => return Err(FLAT_EXIT.replace("{}", what)),
        _ => *slot = price,
    }
    Ok(())
}

pub(crate) fn check_price(what: &str, price: Option<f64>) -> Result<(), String> {
    match price {
        Some(p) if !(p.is_finite() && p > 0.0) => {
            Err(format!("{what} price must be a positive number, got {p}"))
        }
        _ => Ok(()),
    }
}

pub(crate) fn check_order(order: &Order) -> Result<(), String> {
    match order.quantity {
        Quantity::Units(q) | Quantity::Equity(q) if !(q.is_finite() && q > 0.0) => {
            return Err(format!("order quantity must be a positive number, got {q}"))
        }
        _ => {}
    }
    match order.kind {
        OrderKind::Limit(p) => check_price("limit", Some(p))?,
        OrderKind::Stop(p) => check_price("stop", Some(p))?,
        OrderKind::Market => {}
    }
    check_price("stop-loss", order.stop_loss)?;
    check_price("take-profit", order.take_profit)
}
