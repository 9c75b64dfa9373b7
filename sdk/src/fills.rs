//! Market fills simulated in the guest, so a strategy can walk past a bar
//! where it placed market orders without a round trip to the host.
//!
//! This mirrors the host engine's broker (`host/engine/src/broker.rs`)
//! expression for expression, so the results are bit-identical; the host
//! checks the account it reaches against its own after every such fill and
//! fails the run on any difference. Only the simple case is simulated: no
//! resting orders, no stop-loss or take-profit, market orders without exits
//! and `close-position`, and on spot only: under a perpetual the runtime never
//! comes here, since margin, fees and liquidation are the host's alone.

use crate::types::{Action, Fill, FillReason, OrderKind, Portfolio, Quantity, Side};

fn sign(side: Side) -> f64 {
    match side {
        Side::Buy => 1.0,
        Side::Sell => -1.0,
    }
}

fn closing_side(position: f64) -> Side {
    if position > 0.0 {
        Side::Sell
    } else {
        Side::Buy
    }
}

/// Whether `actions` taken with account `p` can be filled here.
pub(crate) fn predictable(p: &Portfolio, actions: &[Action], next_open: f64) -> bool {
    next_open.is_finite()
        && next_open > 0.0
        && p.open_orders == 0
        && p.stop_loss.is_none()
        && p.take_profit.is_none()
        && actions.iter().all(|action| match action {
            Action::ClosePosition => true,
            Action::Submit(order) => {
                let quantity = match order.quantity {
                    Quantity::Units(q) | Quantity::Equity(q) => q,
                };
                order.kind == OrderKind::Market
                    && order.stop_loss.is_none()
                    && order.take_profit.is_none()
                    && quantity.is_finite()
                    && quantity > 0.0
            }
            _ => false,
        })
}

/// Fills `actions` at `open` (the next bar's open) into `p`, as the host's
/// broker does at the start of that bar.
pub(crate) fn fill_market(p: &mut Portfolio, actions: &[Action], open: f64, slippage_bps: f64) {
    p.fill_count = 0;
    p.last_fill = None;
    for action in actions {
        match *action {
            Action::ClosePosition if p.position != 0.0 => {
                let side = closing_side(p.position);
                let price = slipped(open, side, slippage_bps);
                close(p, p.position.abs(), price, FillReason::ClosePosition);
            }
            Action::Submit(order) => {
                let price = slipped(open, order.side, slippage_bps);
                execute(p, order.side, order.quantity, price);
            }
            _ => {}
        }
    }
}

fn slipped(price: f64, side: Side, slippage_bps: f64) -> f64 {
    if slippage_bps == 0.0 {
        return price;
    }
    price * (1.0 + sign(side) * slippage_bps / 10_000.0)
}

fn execute(p: &mut Portfolio, side: Side, quantity: Quantity, price: f64) {
    let opposite = p.position * sign(side) < 0.0;
    let open_qty = match quantity {
        Quantity::Equity(fraction) => {
            if opposite {
                close(p, p.position.abs(), price, FillReason::Market);
            }
            let equity = p.cash + p.position * price;
            let wanted = equity * p.leverage * fraction / (price * (1.0 + p.commission));
            wanted.min(headroom(p, price))
        }
        Quantity::Units(units) => {
            let mut units = units;
            if opposite {
                let reduce = units.min(p.position.abs());
                close(p, reduce, price, FillReason::Market);
                units -= reduce;
            }
            units.min(headroom(p, price))
        }
    };
    if open_qty > 0.0 {
        open(p, side, open_qty, price);
    }
}

fn headroom(p: &Portfolio, price: f64) -> f64 {
    let equity = p.cash + p.position * price;
    let used = p.position.abs() * price;
    ((equity * p.leverage - used) / (price * (1.0 + p.commission))).max(0.0)
}

fn open(p: &mut Portfolio, side: Side, qty: f64, price: f64) {
    let notional = qty * price;
    let fee = notional * p.commission;
    p.cash -= sign(side) * notional + fee;
    if p.position == 0.0 {
        p.entry_price = price;
    } else {
        let held = p.position.abs();
        p.entry_price = (p.entry_price * held + price * qty) / (held + qty);
    }
    p.position += sign(side) * qty;
    record(p, side, qty, price, FillReason::Market);
}

fn close(p: &mut Portfolio, qty: f64, price: f64, reason: FillReason) {
    let held = p.position.abs();
    let qty = qty.min(held);
    if qty <= 0.0 {
        return;
    }
    let long = p.position > 0.0;
    let side = closing_side(p.position);
    let notional = qty * price;
    let fee = notional * p.commission;
    p.cash += -sign(side) * notional - fee;
    let direction = if long { 1.0 } else { -1.0 };
    if qty == held {
        p.position = 0.0;
        p.entry_price = 0.0;
    } else {
        p.position -= direction * qty;
    }
    record(p, side, qty, price, reason);
}

fn record(p: &mut Portfolio, side: Side, qty: f64, price: f64, reason: FillReason) {
    p.fill_count += 1;
    p.last_fill = Some(Fill {
        side,
        qty,
        price,
        reason,
    });
}
