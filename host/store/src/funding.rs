//! Funding history and mark-price candles per symbol
//! (docs/conventions/market-data.md, "Where it is stored"),
//! next to the candles.
//!
//! Funding is small (three settlements a day: about 1,100 a year), so it
//! is one hash per symbol, settlement time -> rate, merged by HSET (a
//! settlement stored again replaces the old rate). Mark prices are candle
//! series under the symbol `{SYMBOL}.MARK` (`Keys::mark_symbol`), so they
//! get the candles' chunks, versions and cache.

use super::cache::CandleCache;
use super::candles::normalize_symbol;
use super::keys::Keys;
use super::{parse_field, Result, SeriesInfo, Store, StoreError};
use serde::Serialize;
use std::collections::HashMap;
use stratbox_engine::candles::Candles;

/// What is stored of a symbol's funding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FundingInfo {
    pub symbol: String,
    pub rows: u64,
    pub first_ts: i64,
    pub last_ts: i64,
}

/// Checks funding rows: at least one, timestamps strictly increasing,
/// rates finite. The error names the row (0-based) and the field.
pub fn check_funding(rates: &[(i64, f64)]) -> Result<()> {
    if rates.is_empty() {
        return Err(StoreError::invalid("funding", "no rows to import"));
    }
    for (i, &(ts, rate)) in rates.iter().enumerate() {
        if i > 0 && ts <= rates[i - 1].0 {
            return Err(StoreError::invalid(
                "funding",
                format!("row {i}: ts {ts} is not after the previous row's ts {}; rows must be in time order", rates[i - 1].0),
            ));
        }
        if !rate.is_finite() {
            return Err(StoreError::invalid(
                "funding",
                format!("row {i}: rate {rate} is not a finite number"),
            ));
        }
    }
    Ok(())
}

impl Store {
    /// Merges funding settlements `(ts unix seconds, rate)` into the
    /// symbol's history; nothing is written when a row is bad.
    pub async fn import_funding(&self, symbol: &str, rates: &[(i64, f64)]) -> Result<FundingInfo> {
        let symbol = normalize_symbol(symbol)?;
        check_funding(rates)?;
        let key = self.keys.funding(&symbol);
        let mut cmd = redis::cmd("HSET");
        cmd.arg(&key);
        for (ts, rate) in rates {
            // `Display` of an f64 reads back to the same bits.
            cmd.arg(ts).arg(rate.to_string());
        }
        let mut conn = self.connection();
        let _: i64 = cmd.query_async(&mut conn).await?;
        let all = self.load_funding(&symbol, i64::MIN, i64::MAX).await?;
        Ok(FundingInfo {
            symbol,
            rows: all.len() as u64,
            first_ts: all.first().map_or(0, |r| r.0),
            last_ts: all.last().map_or(0, |r| r.0),
        })
    }

    /// The settlements with `start_ts <= ts <= end_ts`, ascending; empty
    /// when none is stored.
    pub async fn load_funding(
        &self,
        symbol: &str,
        start_ts: i64,
        end_ts: i64,
    ) -> Result<Vec<(i64, f64)>> {
        let symbol = normalize_symbol(symbol)?;
        let key = self.keys.funding(&symbol);
        let mut conn = self.connection();
        let raw: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        if let (true, Some(shared)) = (raw.is_empty(), &self.shared) {
            return Box::pin(shared.load_funding(&symbol, start_ts, end_ts)).await;
        }
        let mut out = Vec::with_capacity(raw.len());
        for (ts, rate) in &raw {
            let ts: i64 = parse_field(&key, "ts", ts)?;
            if ts >= start_ts && ts <= end_ts {
                out.push((ts, parse_field(&key, ts.to_string().as_str(), rate)?));
            }
        }
        out.sort_by_key(|r| r.0);
        Ok(out)
    }

    /// Merges mark-price candles into the symbol's mark series.
    pub async fn import_mark(
        &self,
        symbol: &str,
        timeframe_secs: i64,
        candles: &Candles,
    ) -> Result<SeriesInfo> {
        let symbol = normalize_symbol(symbol)?;
        self.import_candles(&Keys::mark_symbol(&symbol), timeframe_secs, candles)
            .await
    }

    /// The mark-price bars with `start_ts <= ts <= end_ts`; `NotFound`
    /// when the symbol has no mark series at that timeframe.
    pub async fn load_mark(
        &self,
        cache: &CandleCache,
        symbol: &str,
        timeframe_secs: i64,
        start_ts: i64,
        end_ts: i64,
    ) -> Result<Candles> {
        let symbol = normalize_symbol(symbol)?;
        let (c, _) = self
            .load_candles(
                cache,
                &Keys::mark_symbol(&symbol),
                timeframe_secs,
                start_ts,
                end_ts,
                0,
            )
            .await?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestRedis;
    use stratbox_engine::candles::synth;

    #[tokio::test]
    async fn funding_merges_and_loads_in_order() {
        let t = TestRedis::start("funding").await;
        let a: Vec<(i64, f64)> = (0..10)
            .map(|i| (i * 28_800, 1e-4 * i as f64 - 3e-4))
            .collect();
        let info = t.store.import_funding("btcusdt", &a).await.unwrap();
        assert_eq!(
            (info.symbol.as_str(), info.rows, info.first_ts, info.last_ts),
            ("BTCUSDT", 10, 0, 9 * 28_800)
        );
        // Overlapping rows replace, new ones add.
        let b = [(9 * 28_800, 0.5e-4), (10 * 28_800, 1e-4)];
        let info = t.store.import_funding("BTCUSDT", &b).await.unwrap();
        assert_eq!(info.rows, 11);
        let all = t
            .store
            .load_funding("BTCUSDT", i64::MIN, i64::MAX)
            .await
            .unwrap();
        let mut want = a.clone();
        want[9] = b[0];
        want.push(b[1]);
        assert_eq!(all, want);
        let some = t
            .store
            .load_funding("BTCUSDT", 28_800, 3 * 28_800)
            .await
            .unwrap();
        assert_eq!(some, want[1..=3]);
        assert!(t
            .store
            .load_funding("ETHUSDT", 0, 1)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn bad_funding_is_refused_whole() {
        let t = TestRedis::start("funding-bad").await;
        let e = t
            .store
            .import_funding("X", &[(0, 1e-4), (0, 2e-4)])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("row 1: ts 0 is not after"), "{e}");
        let e = t
            .store
            .import_funding("X", &[(0, 1e-4), (8, f64::NAN)])
            .await
            .unwrap_err();
        assert!(e.to_string().contains("row 1: rate NaN"), "{e}");
        let e = t.store.import_funding("X", &[]).await.unwrap_err();
        assert!(matches!(e, StoreError::Invalid { .. }), "{e}");
        let e = t
            .store
            .import_funding("a:b", &[(0, 0.0)])
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid { ref field, .. } if field == "symbol"),
            "{e}"
        );
        assert!(t
            .store
            .load_funding("X", i64::MIN, i64::MAX)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn mark_is_a_series_beside_the_trades() {
        let t = TestRedis::start("mark").await;
        let mut mark = synth(500, 3, 3_600, 1_704_067_200, 100.0);
        mark.volume.iter_mut().for_each(|v| *v = 0.0);
        let info = t.store.import_mark("btcusdt", 3_600, &mark).await.unwrap();
        assert_eq!((info.symbol.as_str(), info.rows), ("BTCUSDT.MARK", 500));
        let cache = CandleCache::new(1 << 20);
        let got = t
            .store
            .load_mark(&cache, "BTCUSDT", 3_600, i64::MIN, i64::MAX)
            .await
            .unwrap();
        assert_eq!(got, mark);
        let e = t
            .store
            .load_mark(&cache, "ETHUSDT", 3_600, 0, 1)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    }
}
