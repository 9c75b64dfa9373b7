//! A candle series' meta hash as read from Redis (`SeriesMeta`), what the
//! API shows of it (`SeriesInfo`), and the chunk geometry both sides agree
//! on. Its own module so that `candles` (which reads and writes series)
//! and `cache` (which keeps metas and chunks per worker) both depend on it
//! and not on each other.

use super::{parse_field, Result, StoreError};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use stratbox_engine::candles::format_timeframe;

/// Bars per chunk at the series' own timeframe (about 196 KB encoded).
pub const CHUNK_BARS: i64 = 4096;

/// Meta hash fields (the chunk list is `chunk:{no}` fields beside them).
pub(crate) mod field {
    pub const ROWS: &str = "rows";
    pub const FIRST_TS: &str = "first_ts";
    pub const LAST_TS: &str = "last_ts";
    pub const TIMEFRAME_SECS: &str = "timeframe_secs";
    pub const CHUNK_SPAN_SECS: &str = "chunk_span_secs";
    pub const VERSION: &str = "version";
    pub const CHUNK_PREFIX: &str = "chunk:";
}

/// What the API shows of a series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeriesInfo {
    pub symbol: String,
    pub timeframe: String,
    pub timeframe_secs: i64,
    pub rows: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    pub version: u64,
    /// Read from the install's shared market data (a tenant's listing
    /// only; a tenant cannot write there).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
}

/// A series meta hash as read: the info plus chunk number -> the version
/// that last wrote that chunk.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesMeta {
    pub symbol: String,
    pub timeframe_secs: i64,
    pub rows: u64,
    pub first_ts: i64,
    pub last_ts: i64,
    pub chunk_span_secs: i64,
    pub version: u64,
    pub chunks: BTreeMap<i64, u64>,
}

impl SeriesMeta {
    pub(crate) fn parse(
        key: &str,
        symbol: &str,
        timeframe_secs: i64,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<SeriesMeta> {
        let mut values = HashMap::new();
        let mut chunks = BTreeMap::new();
        for (name, value) in pairs {
            if let Some(no) = name.strip_prefix(field::CHUNK_PREFIX) {
                chunks.insert(
                    parse_field(key, &name, no)?,
                    parse_field(key, &name, &value)?,
                );
            } else {
                values.insert(name, value);
            }
        }
        let get = |name: &str| {
            values
                .get(name)
                .map(String::as_str)
                .ok_or_else(|| StoreError::corrupt(key, format!("field {name} is missing")))
        };
        let num = |name: &str| get(name).and_then(|v| parse_field::<i64>(key, name, v));
        let unsigned = |name: &str| get(name).and_then(|v| parse_field::<u64>(key, name, v));
        let meta = SeriesMeta {
            symbol: symbol.to_string(),
            timeframe_secs: num(field::TIMEFRAME_SECS)?,
            rows: unsigned(field::ROWS)?,
            first_ts: num(field::FIRST_TS)?,
            last_ts: num(field::LAST_TS)?,
            chunk_span_secs: num(field::CHUNK_SPAN_SECS)?,
            version: unsigned(field::VERSION)?,
            chunks,
        };
        if meta.timeframe_secs != timeframe_secs {
            return Err(StoreError::corrupt(
                key,
                format!("timeframe_secs is {}", meta.timeframe_secs),
            ));
        }
        let span = chunk_span(timeframe_secs)?;
        if meta.chunk_span_secs != span {
            return Err(StoreError::corrupt(
                key,
                format!(
                    "chunk span {} s, this build reads {span} s",
                    meta.chunk_span_secs
                ),
            ));
        }
        Ok(meta)
    }

    pub fn info(&self) -> SeriesInfo {
        SeriesInfo {
            symbol: self.symbol.clone(),
            timeframe: format_timeframe(self.timeframe_secs),
            timeframe_secs: self.timeframe_secs,
            rows: self.rows,
            first_ts: self.first_ts,
            last_ts: self.last_ts,
            version: self.version,
            shared: false,
        }
    }

    /// The chunks listed in `lo..=hi` (none when `lo > hi`).
    pub(crate) fn chunks_in(
        &self,
        lo: i64,
        hi: i64,
    ) -> std::collections::btree_map::Range<'_, i64, u64> {
        if lo > hi {
            self.chunks.range(lo..lo)
        } else {
            self.chunks.range(lo..=hi)
        }
    }
}

/// Seconds covered by one chunk of a series.
pub fn chunk_span(timeframe_secs: i64) -> Result<i64> {
    if timeframe_secs <= 0 {
        return Err(StoreError::invalid(
            "timeframe",
            format!("{timeframe_secs} s; a timeframe must be positive"),
        ));
    }
    timeframe_secs
        .checked_mul(CHUNK_BARS)
        .ok_or_else(|| StoreError::invalid("timeframe", format!("{timeframe_secs} s is too large")))
}
