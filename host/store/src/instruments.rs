//! Instruments per symbol (docs/conventions/market-data.md,
//! "Instrument"): tick size, qty step, min qty, max
//! leverage, maker/taker fees and the maintenance-margin tiers, stored as
//! one JSON string, checked before anything is written.

use super::candles::normalize_symbol;
use super::{Result, Store, StoreError};
use serde::{Deserialize, Serialize};

/// One maintenance-margin tier: positions valued up to `up_to_value`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstrumentTier {
    pub up_to_value: f64,
    pub mmr: f64,
    pub mm_deduction: f64,
}

/// The instrument as stored (the JSON of `stratbox data fetch bybit
/// --instrument`, or one given by hand).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstrumentSpec {
    pub symbol: String,
    pub tick_size: f64,
    pub qty_step: f64,
    pub min_qty: f64,
    pub max_leverage: f64,
    pub maker_fee: f64,
    pub taker_fee: f64,
    /// Ascending by `up_to_value`; empty for spot.
    #[serde(default)]
    pub tiers: Vec<InstrumentTier>,
}

impl InstrumentSpec {
    /// Checks every field; the error names it (`qty_step`, `tiers[2].mmr`).
    pub fn check(&self) -> Result<()> {
        let positive = |field: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(StoreError::invalid(
                    field,
                    format!("{v} must be a positive number"),
                ))
            }
        };
        let rate = |field: &str, v: f64| {
            if v.is_finite() && (0.0..1.0).contains(&v) {
                Ok(())
            } else {
                Err(StoreError::invalid(
                    field,
                    format!("{v} must be a rate in [0, 1)"),
                ))
            }
        };
        positive("tick_size", self.tick_size)?;
        positive("qty_step", self.qty_step)?;
        positive("min_qty", self.min_qty)?;
        if !(self.max_leverage.is_finite() && self.max_leverage >= 1.0) {
            return Err(StoreError::invalid(
                "max_leverage",
                format!("{} must be at least 1", self.max_leverage),
            ));
        }
        rate("maker_fee", self.maker_fee)?;
        rate("taker_fee", self.taker_fee)?;
        for (i, t) in self.tiers.iter().enumerate() {
            positive(&format!("tiers[{i}].up_to_value"), t.up_to_value)?;
            rate(&format!("tiers[{i}].mmr"), t.mmr)?;
            if !(t.mm_deduction.is_finite() && t.mm_deduction >= 0.0) {
                return Err(StoreError::invalid(
                    format!("tiers[{i}].mm_deduction"),
                    format!("{} must be a non-negative number", t.mm_deduction),
                ));
            }
            if i > 0 && t.up_to_value <= self.tiers[i - 1].up_to_value {
                return Err(StoreError::invalid(
                    format!("tiers[{i}].up_to_value"),
                    "tiers must be in ascending up_to_value order",
                ));
            }
        }
        Ok(())
    }
}

impl InstrumentSpec {
    /// The engine's instrument: the same contract, tiers as risk tiers
    /// (none stored: the default instrument's tiers).
    pub fn to_engine(&self) -> stratbox_engine::perp::Instrument {
        let default = stratbox_engine::perp::Instrument::bybit_default();
        let risk_tiers = if self.tiers.is_empty() {
            default.risk_tiers
        } else {
            self.tiers
                .iter()
                .map(|t| stratbox_engine::perp::RiskTier {
                    up_to_value: t.up_to_value,
                    mmr: t.mmr,
                    mm_deduction: t.mm_deduction,
                })
                .collect()
        };
        stratbox_engine::perp::Instrument {
            tick_size: self.tick_size,
            qty_step: self.qty_step,
            min_qty: self.min_qty,
            max_leverage: self.max_leverage,
            maker_fee: self.maker_fee,
            taker_fee: self.taker_fee,
            risk_tiers,
        }
    }
}

impl Store {
    /// Stores (replaces) the instrument of `symbol`, after checking it.
    pub async fn put_instrument(&self, symbol: &str, spec: &InstrumentSpec) -> Result<()> {
        let symbol = normalize_symbol(symbol)?;
        spec.check()?;
        let json = serde_json::to_string(spec)
            .map_err(|e| StoreError::invalid("instrument", e.to_string()))?;
        let mut conn = self.connection();
        let () = redis::cmd("SET")
            .arg(self.keys.instrument(&symbol))
            .arg(json)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The stored instrument of `symbol`, if any.
    pub async fn get_instrument(&self, symbol: &str) -> Result<Option<InstrumentSpec>> {
        let symbol = normalize_symbol(symbol)?;
        let key = self.keys.instrument(&symbol);
        let mut conn = self.connection();
        let raw: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        raw.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::corrupt(&key, e.to_string())))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestRedis;

    fn btc() -> InstrumentSpec {
        InstrumentSpec {
            symbol: "BTCUSDT".into(),
            tick_size: 0.1,
            qty_step: 0.001,
            min_qty: 0.001,
            max_leverage: 100.0,
            maker_fee: 0.0002,
            taker_fee: 0.00055,
            tiers: vec![
                InstrumentTier {
                    up_to_value: 2e6,
                    mmr: 0.005,
                    mm_deduction: 0.0,
                },
                InstrumentTier {
                    up_to_value: 2.6e6,
                    mmr: 0.0056,
                    mm_deduction: 1200.0,
                },
            ],
        }
    }

    #[tokio::test]
    async fn round_trip_and_replace() {
        let t = TestRedis::start("instrument").await;
        assert_eq!(t.store.get_instrument("BTCUSDT").await.unwrap(), None);
        t.store.put_instrument("btcusdt", &btc()).await.unwrap();
        assert_eq!(
            t.store.get_instrument("BTCUSDT").await.unwrap(),
            Some(btc())
        );
        let mut other = btc();
        other.max_leverage = 50.0;
        t.store.put_instrument("BTCUSDT", &other).await.unwrap();
        assert_eq!(
            t.store.get_instrument("BTCUSDT").await.unwrap(),
            Some(other)
        );
    }

    #[tokio::test]
    async fn bad_instruments_name_the_field() {
        let t = TestRedis::start("instrument-bad").await;
        type Spoil = fn(&mut InstrumentSpec);
        let cases: [(&str, Spoil); 5] = [
            ("qty_step", |s| s.qty_step = 0.0),
            ("tick_size", |s| s.tick_size = f64::NAN),
            ("max_leverage", |s| s.max_leverage = 0.5),
            ("tiers[1].mmr", |s| s.tiers[1].mmr = 1.5),
            ("tiers[1].up_to_value", |s| s.tiers[1].up_to_value = 1.0),
        ];
        for (field, spoil) in cases {
            let mut s = btc();
            spoil(&mut s);
            let e = t.store.put_instrument("ETHUSDT", &s).await.unwrap_err();
            assert!(
                matches!(&e, StoreError::Invalid { field: f, .. } if f == field),
                "{field}: {e}"
            );
        }
        assert_eq!(
            t.store.get_instrument("ETHUSDT").await.unwrap(),
            None,
            "nothing stored"
        );
    }
}
