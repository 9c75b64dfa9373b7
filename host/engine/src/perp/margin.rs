//! Isolated-margin arithmetic of a perpetual position (docs/conventions/engine.md,
//! "Perpetual futures", "Margin and equity", "Liquidation price",
//! "Settlement", "Sizing"). Pure functions; the broker calls them.

use super::instrument::Instrument;

/// `floor_step(q)`: `q` floored to a whole number of `step`s. A quantity a
/// hair below a step boundary only through float error (within 1e-9 of a
/// step) counts as the boundary.
pub fn floor_step(qty: f64, step: f64) -> f64 {
    if !(qty.is_finite() && qty > 0.0) {
        return 0.0;
    }
    let steps = (qty / step + 1e-9).floor();
    steps * step
}

/// Initial margin: `IM = qty * P / L`.
pub fn initial_margin(qty: f64, price: f64, leverage: f64) -> f64 {
    qty * price / leverage
}

/// Maintenance margin: `MM = qty * P * mmr - mm_deduction`, the tier
/// chosen by the position value `qty * P`.
pub fn maintenance_margin(instrument: &Instrument, qty: f64, price: f64) -> f64 {
    let value = qty * price;
    let tier = instrument.tier(value);
    value * tier.mmr - tier.mm_deduction
}

/// Liquidation price of an isolated position of `qty` (> 0) entered at
/// `price` with position margin `pm`: long `P - (PM - MM) / qty`, short
/// `P + (PM - MM) / qty`.
pub fn liquidation_price(
    instrument: &Instrument,
    long: bool,
    qty: f64,
    price: f64,
    pm: f64,
) -> f64 {
    let mm = maintenance_margin(instrument, qty, price);
    if long {
        price - (pm - mm) / qty
    } else {
        price + (pm - mm) / qty
    }
}

/// Bankruptcy price, where the position margin is used up: long
/// `P - PM / qty`, short `P + PM / qty`.
pub fn bankruptcy_price(long: bool, qty: f64, price: f64, pm: f64) -> f64 {
    if long {
        price - pm / qty
    } else {
        price + pm / qty
    }
}

/// All-in quantity from `available` at fill price `price`:
/// `floor_step(available * L / (price * (1 + L * taker_fee)))`, so the
/// initial margin plus a taker fee fits `available`.
pub fn all_in_qty(available: f64, leverage: f64, price: f64, instrument: &Instrument) -> f64 {
    floor_step(
        available * leverage / (price * (1.0 + leverage * instrument.taker_fee)),
        instrument.qty_step,
    )
}
