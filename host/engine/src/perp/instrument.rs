//! The traded contract of a perpetual run (docs/conventions/engine.md,
//! "Perpetual futures", "Instrument"): price and quantity grid, leverage cap,
//! fees and the risk-limit tiers that set the maintenance margin.

use serde::{Deserialize, Serialize};

/// One risk-limit tier: positions whose value is at most `up_to_value`
/// (and above the previous tier's) keep `mmr` of their value as
/// maintenance margin, less `mm_deduction`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RiskTier {
    /// Upper bound of position value (USDT) for this tier, inclusive;
    /// infinite for the last tier (`null` in JSON).
    #[serde(with = "unbounded")]
    pub up_to_value: f64,
    /// Maintenance margin rate, a fraction of position value.
    pub mmr: f64,
    /// Subtracted from `value * mmr` (USDT), so tiers join without a step.
    pub mm_deduction: f64,
}

/// A USDT-margined linear perpetual contract, in the one JSON form the
/// store keeps, `stratbox data fetch bybit --instrument` writes and
/// `--instrument PATH` reads (the Bybit `instruments-info` /
/// `risk-limit` parsers live with the fetcher).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instrument {
    /// The exchange's symbol, when the instrument came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    pub tick_size: f64,
    pub qty_step: f64,
    pub min_qty: f64,
    pub max_leverage: f64,
    pub maker_fee: f64,
    pub taker_fee: f64,
    /// Sorted by `up_to_value`, at least one; a value above the last
    /// tier's bound uses the last tier. `tiers` is read too (the name
    /// files written before 0.2 used).
    #[serde(alias = "tiers")]
    pub risk_tiers: Vec<RiskTier>,
}

/// An instrument field out of range; `field` names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid instrument {field}: {message}")]
pub struct InstrumentError {
    pub field: &'static str,
    pub message: String,
}

impl Default for Instrument {
    fn default() -> Self {
        Self::bybit_default()
    }
}

impl Instrument {
    /// BTCUSDT's values, used when nothing is known of a symbol
    /// (docs/conventions/engine.md, "Perpetual futures", "Instrument").
    pub fn bybit_default() -> Self {
        Self {
            symbol: None,
            // Price grid: 0.1 USDT.
            tick_size: 0.1,
            // Quantity grid: 0.001 BTC.
            qty_step: 0.001,
            // Smallest order: 0.001 BTC.
            min_qty: 0.001,
            // Highest leverage of the first risk-limit tier.
            max_leverage: 100.0,
            // 0.02 % for a resting (maker) limit order.
            maker_fee: 0.0002,
            // 0.055 % for market, stop, stop-loss and take-profit fills.
            taker_fee: 0.00055,
            risk_tiers: vec![RiskTier {
                // One tier for every position value.
                up_to_value: f64::INFINITY,
                // Maintenance margin rate 0.5 %.
                mmr: 0.005,
                // No deduction in the first tier.
                mm_deduction: 0.0,
            }],
        }
    }

    /// Checks every field; the error names the first one out of range.
    pub fn check(&self) -> Result<(), InstrumentError> {
        let bad = |field: &'static str, message: String| Err(InstrumentError { field, message });
        let positive = [
            ("tick_size", self.tick_size),
            ("qty_step", self.qty_step),
            ("min_qty", self.min_qty),
            ("max_leverage", self.max_leverage),
        ];
        for (field, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return bad(field, format!("must be a positive number, got {value}"));
            }
        }
        if self.max_leverage < 1.0 {
            return bad(
                "max_leverage",
                format!("must be at least 1, got {}", self.max_leverage),
            );
        }
        for (field, value) in [("maker_fee", self.maker_fee), ("taker_fee", self.taker_fee)] {
            if !(value.is_finite() && (-0.01..0.1).contains(&value)) {
                return bad(
                    field,
                    format!("must be a fraction from -0.01 to below 0.1, got {value}"),
                );
            }
        }
        if self.risk_tiers.is_empty() {
            return bad("risk_tiers", "must hold at least one tier".into());
        }
        let mut previous = 0.0;
        for (k, tier) in self.risk_tiers.iter().enumerate() {
            if tier.up_to_value.is_nan() || tier.up_to_value <= previous {
                return bad(
                    "risk_tiers",
                    format!(
                        "tier {k}: up_to_value must be above the previous tier's ({previous}), got {}",
                        tier.up_to_value
                    ),
                );
            }
            if !(tier.mmr.is_finite() && tier.mmr > 0.0 && tier.mmr < 1.0) {
                return bad(
                    "risk_tiers",
                    format!(
                        "tier {k}: mmr must be above 0 and below 1, got {}",
                        tier.mmr
                    ),
                );
            }
            if !(tier.mm_deduction.is_finite() && tier.mm_deduction >= 0.0) {
                return bad(
                    "risk_tiers",
                    format!(
                        "tier {k}: mm_deduction must be at least 0, got {}",
                        tier.mm_deduction
                    ),
                );
            }
            previous = tier.up_to_value;
        }
        Ok(())
    }

    /// The tier of a position worth `value` (qty x entry price): the first
    /// whose bound is at least `value`, else the last.
    pub fn tier(&self, value: f64) -> &RiskTier {
        self.risk_tiers
            .iter()
            .find(|t| value <= t.up_to_value)
            .unwrap_or_else(|| &self.risk_tiers[self.risk_tiers.len() - 1])
    }

    /// Parses our JSON form and checks it.
    pub fn from_json(text: &str) -> Result<Self, InstrumentError> {
        let instrument: Instrument = serde_json::from_str(text).map_err(|e| InstrumentError {
            field: "json",
            message: e.to_string(),
        })?;
        instrument.check()?;
        Ok(instrument)
    }
}

/// An infinite bound as JSON `null` (JSON has no infinity).
mod unbounded {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
        if value.is_infinite() {
            s.serialize_none()
        } else {
            s.serialize_f64(*value)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}
