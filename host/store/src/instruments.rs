//! Instruments per symbol (docs/conventions/market-data.md,
//! "Instrument"): the engine's [`Instrument`] (tick size, qty step, min
//! qty, max leverage, maker/taker fees and the maintenance-margin tiers)
//! stored as its JSON, checked before anything is written.

use super::candles::normalize_symbol;
use super::{Result, Store, StoreError};
use stratbox_engine::perp::Instrument;

impl Store {
    /// Stores (replaces) the instrument of `symbol`, after checking it.
    pub async fn put_instrument(&self, symbol: &str, instrument: &Instrument) -> Result<()> {
        let symbol = normalize_symbol(symbol)?;
        instrument
            .check()
            .map_err(|e| StoreError::invalid(e.field, e.message))?;
        let json = serde_json::to_string(instrument)
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
    pub async fn get_instrument(&self, symbol: &str) -> Result<Option<Instrument>> {
        let symbol = normalize_symbol(symbol)?;
        let key = self.keys.instrument(&symbol);
        let mut conn = self.connection();
        let raw: Option<String> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        if let (None, Some(shared)) = (&raw, &self.shared) {
            return Box::pin(shared.get_instrument(&symbol)).await;
        }
        raw.map(|j| serde_json::from_str(&j).map_err(|e| StoreError::corrupt(&key, e.to_string())))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestRedis;
    use stratbox_engine::perp::RiskTier;

    fn btc() -> Instrument {
        Instrument {
            symbol: Some("BTCUSDT".into()),
            tick_size: 0.1,
            qty_step: 0.001,
            min_qty: 0.001,
            max_leverage: 100.0,
            maker_fee: 0.0002,
            taker_fee: 0.00055,
            risk_tiers: vec![
                RiskTier {
                    up_to_value: 2e6,
                    mmr: 0.005,
                    mm_deduction: 0.0,
                },
                RiskTier {
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
        type Spoil = fn(&mut Instrument);
        let cases: [(&str, Spoil); 5] = [
            ("qty_step", |s| s.qty_step = 0.0),
            ("tick_size", |s| s.tick_size = f64::NAN),
            ("max_leverage", |s| s.max_leverage = 0.5),
            ("risk_tiers", |s| s.risk_tiers[1].mmr = 1.5),
            ("risk_tiers", |s| s.risk_tiers[1].up_to_value = 1.0),
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
