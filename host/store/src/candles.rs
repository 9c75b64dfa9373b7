//! Candles per symbol and timeframe, as binary chunks any worker can read.
//!
//! A chunk holds the bars of one time bucket, `ts.div_euclid(span)` with
//! `span = timeframe_secs * CHUNK_BARS`: a range maps to chunk numbers
//! without a lookup, and an import rewrites only the buckets it touches.

use super::cache::{CandleCache, Lookup};
use super::chunk;
use super::keys::Keys;
use super::series::field;
pub use super::series::{chunk_span, SeriesInfo, SeriesMeta, CHUNK_BARS};
use super::{parse_field, Result, Store, StoreError};
use redis::{RedisError, Script, Value};
use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, LazyLock};
use stratbox_engine::candles::{format_timeframe, parse_timeframe, Candles};

/// Optimistic import retries before giving up on a series that keeps
/// changing underneath.
const IMPORT_ATTEMPTS: usize = 16;

/// Checks a symbol (`[A-Za-z0-9._-]{1,32}`) and uppercases it: symbols go
/// into key names, so nothing else may get in.
pub fn normalize_symbol(symbol: &str) -> Result<String> {
    let ok = (1..=32).contains(&symbol.len())
        && symbol
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(StoreError::invalid(
            "symbol",
            format!("`{symbol}` must be 1 to 32 characters among A-Z, a-z, 0-9, `.`, `_` and `-`"),
        ));
    }
    Ok(symbol.to_ascii_uppercase())
}

/// Reads a series meta and, in the same atomic step, the chunks numbered
/// `lo..=hi` (ARGV 1 and 2) that it lists, except those the caller already
/// holds at the listed write version (ARGV 3.. as pairs number, version).
/// Returns false for an unknown series, else {meta pairs, {no, version,
/// bytes, ...}}. Chunk keys are the meta key, a colon and the number
/// (`Keys::chunk`).
static LOAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local meta = redis.call('HGETALL', KEYS[1])
if #meta == 0 then return false end
local lo, hi = tonumber(ARGV[1]), tonumber(ARGV[2])
local held = {}
for i = 3, #ARGV, 2 do held[ARGV[i]] = ARGV[i + 1] end
local out = {}
for i = 1, #meta, 2 do
  if string.sub(meta[i], 1, 6) == 'chunk:' then
    local no = string.sub(meta[i], 7)
    local n = tonumber(no)
    if n and n >= lo and n <= hi and held[no] ~= meta[i + 1] then
      out[#out + 1] = no
      out[#out + 1] = meta[i + 1]
      out[#out + 1] = redis.call('GET', KEYS[1] .. ':' .. no) or ''
    end
  end
end
return {meta, out}
",
    )
});

/// Writes an import if the series is still at the version the caller
/// merged against: KEYS[1] meta, KEYS[2] series set, KEYS[3..] chunks;
/// ARGV[1] that version ('0' for a new series), ARGV[2] the set member,
/// then one payload per chunk key, then meta field/value pairs. Returns 1
/// when written, 0 on a conflict (the caller re-reads and retries).
static IMPORT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('HGET', KEYS[1], 'version') or '0'
if current ~= ARGV[1] then return 0 end
local n = #KEYS - 2
for i = 1, n do redis.call('SET', KEYS[i + 2], ARGV[i + 2]) end
for i = n + 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SADD', KEYS[2], ARGV[2])
return 1
",
    )
});

fn push_row(out: &mut Candles, c: &Candles, i: usize) {
    out.push(
        c.ts[i],
        c.open[i],
        c.high[i],
        c.low[i],
        c.close[i],
        c.volume[i],
    );
}

/// `old` with the rows of `new[rows]` added, a new row replacing an old
/// one at the same ts. Both are sorted by ts.
fn merge(old: &Candles, new: &Candles, rows: Range<usize>) -> Candles {
    let mut out = Candles::with_capacity(old.len() + rows.len());
    let mut i = 0;
    for j in rows {
        let ts = new.ts[j];
        while i < old.len() && old.ts[i] < ts {
            push_row(&mut out, old, i);
            i += 1;
        }
        if i < old.len() && old.ts[i] == ts {
            i += 1;
        }
        push_row(&mut out, new, j);
    }
    for k in i..old.len() {
        push_row(&mut out, old, k);
    }
    out
}

/// The rows with `start_ts <= ts <= end_ts` of chunks sorted by number.
fn assemble(chunks: &[Arc<Candles>], start_ts: i64, end_ts: i64) -> Candles {
    let bounds: Vec<(usize, usize)> = chunks
        .iter()
        .map(|c| {
            let a = c.ts.partition_point(|&t| t < start_ts);
            let b = c.ts.partition_point(|&t| t <= end_ts);
            (a, b.max(a))
        })
        .collect();
    let mut out = Candles::with_capacity(bounds.iter().map(|(a, b)| b - a).sum());
    for (c, &(a, b)) in chunks.iter().zip(&bounds) {
        out.ts.extend_from_slice(&c.ts[a..b]);
        out.open.extend_from_slice(&c.open[a..b]);
        out.high.extend_from_slice(&c.high[a..b]);
        out.low.extend_from_slice(&c.low[a..b]);
        out.close.extend_from_slice(&c.close[a..b]);
        out.volume.extend_from_slice(&c.volume[a..b]);
    }
    out
}

fn series_what(symbol: &str, timeframe_secs: i64) -> String {
    format!("candles {symbol} {}", format_timeframe(timeframe_secs))
}

impl Store {
    /// Merges `candles` into the stored series (a new row replaces a
    /// stored one with the same ts) and bumps its version. The touched
    /// chunks and the meta are written in one atomic step, retried if
    /// another import got there first.
    pub async fn import_candles(
        &self,
        symbol: &str,
        timeframe_secs: i64,
        candles: &Candles,
    ) -> Result<SeriesInfo> {
        let symbol = normalize_symbol(symbol)?;
        let span = chunk_span(timeframe_secs)?;
        candles
            .validate()
            .map_err(|e| StoreError::invalid("candles", e.to_string()))?;
        let (Some(&new_first), Some(&new_last)) = (candles.ts.first(), candles.ts.last()) else {
            return Err(StoreError::invalid("candles", "no rows to import"));
        };
        // Rows are sorted, so each chunk's rows are one run.
        let mut groups: Vec<(i64, Range<usize>)> = Vec::new();
        for (i, ts) in candles.ts.iter().enumerate() {
            let no = ts.div_euclid(span);
            match groups.last_mut() {
                Some((last, rows)) if *last == no => rows.end = i + 1,
                _ => groups.push((no, i..i + 1)),
            }
        }
        let meta_key = self.keys.series(&symbol, timeframe_secs);
        let chunk_keys: Vec<String> = groups
            .iter()
            .map(|(no, _)| self.keys.chunk(&symbol, timeframe_secs, *no))
            .collect();
        let mut conn = self.conn.clone();
        for attempt in 0..IMPORT_ATTEMPTS {
            if attempt > 0 {
                // Let the import that won finish its turn before re-reading.
                tokio::time::sleep(std::time::Duration::from_millis(attempt as u64)).await;
            }
            let mut read = redis::pipe();
            read.atomic().cmd("HGETALL").arg(&meta_key);
            for key in &chunk_keys {
                read.cmd("GET").arg(key);
            }
            let mut replies = read.query_async::<Vec<Value>>(&mut conn).await?.into_iter();
            let pairs: HashMap<String, String> =
                redis::from_redis_value(replies.next().unwrap_or(Value::Nil))
                    .map_err(RedisError::from)?;
            let meta = if pairs.is_empty() {
                None
            } else {
                Some(SeriesMeta::parse(
                    &meta_key,
                    &symbol,
                    timeframe_secs,
                    pairs,
                )?)
            };
            let base = meta.as_ref().map_or(0, |m| m.version);
            let version = base + 1;
            let mut info = match &meta {
                Some(m) => m.info(),
                None => SeriesInfo {
                    symbol: symbol.clone(),
                    timeframe: format_timeframe(timeframe_secs),
                    timeframe_secs,
                    rows: 0,
                    first_ts: new_first,
                    last_ts: new_last,
                    version: 0,
                    shared: false,
                },
            };
            info.first_ts = info.first_ts.min(new_first);
            info.last_ts = info.last_ts.max(new_last);
            info.version = version;

            let mut payloads = Vec::with_capacity(groups.len());
            for (((no, rows), key), reply) in groups.iter().zip(&chunk_keys).zip(replies.by_ref()) {
                let stored: Option<Vec<u8>> =
                    redis::from_redis_value(reply).map_err(RedisError::from)?;
                // Only chunks the meta lists count: bytes it does not list
                // are leftovers of a deleted series.
                let listed = meta.as_ref().is_some_and(|m| m.chunks.contains_key(no));
                let old = match (listed, stored) {
                    (true, Some(bytes)) => chunk::decode(key, &bytes)?,
                    (true, None) => {
                        return Err(StoreError::corrupt(
                            key,
                            "chunk listed in the meta is missing",
                        ))
                    }
                    (false, _) => Candles::new(),
                };
                let merged = merge(&old, candles, rows.clone());
                info.rows += (merged.len() - old.len()) as u64;
                payloads.push(chunk::encode(&merged)?);
            }

            let mut fields = vec![
                (field::ROWS.to_string(), info.rows.to_string()),
                (field::FIRST_TS.to_string(), info.first_ts.to_string()),
                (field::LAST_TS.to_string(), info.last_ts.to_string()),
                (
                    field::TIMEFRAME_SECS.to_string(),
                    timeframe_secs.to_string(),
                ),
                (field::CHUNK_SPAN_SECS.to_string(), span.to_string()),
                (field::VERSION.to_string(), version.to_string()),
            ];
            for (no, _) in &groups {
                fields.push((format!("{}{no}", field::CHUNK_PREFIX), version.to_string()));
            }
            let mut write = IMPORT.prepare_invoke();
            write.key(&meta_key).key(self.keys.series_set());
            for key in &chunk_keys {
                write.key(key);
            }
            write
                .arg(base)
                .arg(Keys::series_member(&symbol, timeframe_secs));
            for payload in &payloads {
                write.arg(payload.as_slice());
            }
            for (name, value) in &fields {
                write.arg(name).arg(value);
            }
            let written: i64 = write.invoke_async(&mut conn).await?;
            if written == 1 {
                return Ok(info);
            }
        }
        Err(StoreError::Conflict {
            what: series_what(&symbol, timeframe_secs),
        })
    }

    pub async fn series_info(
        &self,
        symbol: &str,
        timeframe_secs: i64,
    ) -> Result<Option<SeriesInfo>> {
        let symbol = normalize_symbol(symbol)?;
        chunk_span(timeframe_secs)?;
        let Some(shared) = &self.shared else {
            let values: Vec<Option<String>> = redis::cmd("HMGET")
                .arg(self.keys.series(&symbol, timeframe_secs))
                .arg(INFO_FIELDS.as_slice())
                .query_async(&mut self.conn.clone())
                .await?;
            return self.parse_info(&symbol, timeframe_secs, values);
        };
        // A tenant's own series, else the shared one: one round trip.
        let (own, in_shared): (Vec<Option<String>>, Vec<Option<String>>) = redis::pipe()
            .cmd("HMGET")
            .arg(self.keys.series(&symbol, timeframe_secs))
            .arg(INFO_FIELDS.as_slice())
            .cmd("HMGET")
            .arg(shared.keys.series(&symbol, timeframe_secs))
            .arg(INFO_FIELDS.as_slice())
            .query_async(&mut self.conn.clone())
            .await?;
        match self.parse_info(&symbol, timeframe_secs, own)? {
            Some(own) => Ok(Some(own)),
            None => Ok(shared
                .parse_info(&symbol, timeframe_secs, in_shared)?
                .map(|i| SeriesInfo { shared: true, ..i })),
        }
    }

    /// A tenant's own series, else the shared one: which store holds
    /// `symbol` at `timeframe_secs` (one EXISTS, and only for a tenant).
    async fn market_holder(&self, symbol: &str, timeframe_secs: i64) -> Result<&Store> {
        let Some(shared) = self.shared.as_deref() else {
            return Ok(self);
        };
        let own: bool = redis::cmd("EXISTS")
            .arg(self.keys.series(symbol, timeframe_secs))
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(if own { self } else { shared })
    }

    /// Every stored series, sorted by symbol then timeframe.
    pub async fn list_series(&self) -> Result<Vec<SeriesInfo>> {
        let mut conn = self.conn.clone();
        let set_key = self.keys.series_set();
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(&set_key)
            .query_async(&mut conn)
            .await?;
        let mut series = Vec::with_capacity(members.len());
        for member in &members {
            let parsed = member
                .rsplit_once(':')
                .and_then(|(s, tf)| Some((normalize_symbol(s).ok()?, parse_timeframe(tf).ok()?)));
            let Some(parsed) = parsed else {
                return Err(StoreError::corrupt(
                    &set_key,
                    format!("member `{member}` is not SYMBOL:tf"),
                ));
            };
            series.push(parsed);
        }
        let mut read = redis::pipe();
        for (symbol, tf) in &series {
            read.cmd("HMGET")
                .arg(self.keys.series(symbol, *tf))
                .arg(INFO_FIELDS.as_slice());
        }
        let replies: Vec<Vec<Option<String>>> = if series.is_empty() {
            Vec::new()
        } else {
            read.query_async(&mut conn).await?
        };
        let mut out = Vec::with_capacity(series.len());
        for ((symbol, tf), values) in series.iter().zip(replies) {
            if let Some(info) = self.parse_info(symbol, *tf, values)? {
                out.push(info);
            }
        }
        if let Some(shared) = &self.shared {
            let own: std::collections::BTreeSet<(String, i64)> = out
                .iter()
                .map(|i| (i.symbol.clone(), i.timeframe_secs))
                .collect();
            for info in Box::pin(shared.list_series()).await? {
                if !own.contains(&(info.symbol.clone(), info.timeframe_secs)) {
                    out.push(SeriesInfo {
                        shared: true,
                        ..info
                    });
                }
            }
        }
        out.sort_by(|a, b| (&a.symbol, a.timeframe_secs).cmp(&(&b.symbol, b.timeframe_secs)));
        Ok(out)
    }

    /// The current version of each series (`None`: not stored), in one
    /// round trip; what a submitter records as a task's `min_version`.
    pub async fn series_versions(&self, series: &[(&str, i64)]) -> Result<Vec<Option<u64>>> {
        if series.is_empty() {
            return Ok(Vec::new());
        }
        let mut read = redis::pipe();
        let mut keys = Vec::with_capacity(series.len());
        for (symbol, tf) in series {
            let symbol = normalize_symbol(symbol)?;
            chunk_span(*tf)?;
            let key = self.keys.series(&symbol, *tf);
            read.cmd("HGET").arg(&key).arg(field::VERSION);
            keys.push(key);
            // A tenant's own series, else the shared one: both in the
            // same round trip.
            if let Some(shared) = &self.shared {
                let key = shared.keys.series(&symbol, *tf);
                read.cmd("HGET").arg(&key).arg(field::VERSION);
                keys.push(key);
            }
        }
        let replies: Vec<Option<String>> = read.query_async(&mut self.conn.clone()).await?;
        let versions = keys
            .iter()
            .zip(replies)
            .map(|(key, v)| v.map(|v| parse_field(key, field::VERSION, &v)).transpose())
            .collect::<Result<Vec<Option<u64>>>>()?;
        if self.shared.is_none() {
            return Ok(versions);
        }
        Ok(versions
            .chunks(2)
            .map(|own_then_shared| own_then_shared[0].or(own_then_shared[1]))
            .collect())
    }

    /// The bars with `start_ts <= ts <= end_ts`, and the series version
    /// they come from (at least `min_version`). Served from `cache` without
    /// any Redis round trip when it holds the whole range at a version
    /// `>= min_version`; otherwise the meta and the missing chunks are
    /// read in one atomic script call and the cache is refreshed.
    pub async fn load_candles(
        &self,
        cache: &CandleCache,
        symbol: &str,
        timeframe_secs: i64,
        start_ts: i64,
        end_ts: i64,
        min_version: u64,
    ) -> Result<(Candles, u64)> {
        let symbol = normalize_symbol(symbol)?;
        let span = chunk_span(timeframe_secs)?;
        let holder = self.market_holder(&symbol, timeframe_secs).await?;
        if !std::ptr::eq(holder, self) {
            return Box::pin(holder.load_candles(
                cache,
                &symbol,
                timeframe_secs,
                start_ts,
                end_ts,
                min_version,
            ))
            .await;
        }
        // One worker's cache serves every tenant: a tenant's own series
        // is cached under its prefix, never under the shared name.
        let cached_as = match self.tenant {
            Some(_) => format!("{}/{symbol}", self.keys.prefix()),
            None => symbol.clone(),
        };
        let (lo, hi) = (start_ts.div_euclid(span), end_ts.div_euclid(span));
        let mut held = match cache.lookup(&cached_as, timeframe_secs, lo, hi, min_version) {
            Lookup::Hit(meta, chunks) => {
                return Ok((assemble(&chunks, start_ts, end_ts), meta.version))
            }
            Lookup::Miss(held) => held,
        };
        cache.note_remote_load();
        let meta_key = self.keys.series(&symbol, timeframe_secs);
        let mut call = LOAD.prepare_invoke();
        call.key(&meta_key).arg(lo).arg(hi);
        for (no, (written, _)) in &held {
            call.arg(no).arg(written);
        }
        let reply: Option<(Vec<String>, Vec<Vec<u8>>)> =
            call.invoke_async(&mut self.conn.clone()).await?;
        let Some((flat_meta, flat_chunks)) = reply else {
            return Err(StoreError::not_found(series_what(&symbol, timeframe_secs)));
        };
        let mut pairs = Vec::with_capacity(flat_meta.len() / 2);
        let mut flat_meta = flat_meta.into_iter();
        while let (Some(name), Some(value)) = (flat_meta.next(), flat_meta.next()) {
            pairs.push((name, value));
        }
        let meta = Arc::new(SeriesMeta::parse(
            &meta_key,
            &cached_as,
            timeframe_secs,
            pairs,
        )?);
        if meta.version < min_version {
            // Redis lost an import the task was submitted after.
            return Err(StoreError::not_found(format!(
                "{} at version {min_version} or later (redis holds version {})",
                series_what(&symbol, timeframe_secs),
                meta.version
            )));
        }
        let mut fresh = Vec::with_capacity(flat_chunks.len() / 3);
        for triple in flat_chunks.chunks_exact(3) {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            let no: i64 = parse_field(&meta_key, "chunk number", &text(&triple[0]))?;
            let written: u64 = parse_field(&meta_key, "chunk version", &text(&triple[1]))?;
            let key = self.keys.chunk(&symbol, timeframe_secs, no);
            let data = Arc::new(chunk::decode(&key, &triple[2])?);
            held.insert(no, (written, data.clone()));
            fresh.push((no, written, data));
        }
        let mut chunks = Vec::new();
        for (no, written) in meta.chunks_in(lo, hi) {
            match held.get(no) {
                Some((w, data)) if w == written => chunks.push(data.clone()),
                _ => {
                    return Err(StoreError::corrupt(
                        self.keys.chunk(&symbol, timeframe_secs, *no),
                        "chunk not returned by the load script",
                    ))
                }
            }
        }
        let version = meta.version;
        cache.insert(meta, fresh);
        Ok((assemble(&chunks, start_ts, end_ts), version))
    }

    fn parse_info(
        &self,
        symbol: &str,
        timeframe_secs: i64,
        values: Vec<Option<String>>,
    ) -> Result<Option<SeriesInfo>> {
        let key = self.keys.series(symbol, timeframe_secs);
        let mut values = values.into_iter();
        let mut next = |name: &str| -> Result<Option<String>> {
            match values.next() {
                Some(v) => Ok(v),
                None => Err(StoreError::corrupt(
                    &key,
                    format!("no reply for field {name}"),
                )),
            }
        };
        let (rows, first, last, version) = (
            next(field::ROWS)?,
            next(field::FIRST_TS)?,
            next(field::LAST_TS)?,
            next(field::VERSION)?,
        );
        let (Some(rows), Some(first), Some(last), Some(version)) = (rows, first, last, version)
        else {
            return Ok(None);
        };
        Ok(Some(SeriesInfo {
            symbol: symbol.to_string(),
            timeframe: format_timeframe(timeframe_secs),
            timeframe_secs,
            rows: parse_field(&key, field::ROWS, &rows)?,
            first_ts: parse_field(&key, field::FIRST_TS, &first)?,
            last_ts: parse_field(&key, field::LAST_TS, &last)?,
            version: parse_field(&key, field::VERSION, &version)?,
            shared: false,
        }))
    }
}

/// The meta fields [`SeriesInfo`] reads, in `parse_info` order.
static INFO_FIELDS: [&str; 4] = [field::ROWS, field::FIRST_TS, field::LAST_TS, field::VERSION];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TestRedis;
    use stratbox_engine::candles::synth;

    const TF: i64 = 60;

    fn bits(c: &Candles) -> Vec<Vec<u64>> {
        [&c.open, &c.high, &c.low, &c.close, &c.volume]
            .iter()
            .map(|col| col.iter().map(|v| v.to_bits()).collect())
            .collect()
    }

    #[track_caller]
    fn assert_same(got: &Candles, want: &Candles) {
        assert_eq!(got.ts, want.ts);
        assert_eq!(bits(got), bits(want));
    }

    /// 20 000 one-minute bars starting before the epoch, so chunk numbers
    /// go negative and a chunk boundary is not at a round ts.
    fn data() -> Candles {
        synth(20_000, 7, TF, -300_000 - 17 * TF, 100.0)
    }

    async fn load(
        store: &Store,
        cache: &CandleCache,
        symbol: &str,
        start: i64,
        end: i64,
        min_version: u64,
    ) -> (Candles, u64) {
        store
            .load_candles(cache, symbol, TF, start, end, min_version)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn import_then_load_equals_range() {
        let t = TestRedis::start("import-load").await;
        let c = data();
        let info = t.store.import_candles("btcusdt", TF, &c).await.unwrap();
        assert_eq!(
            info,
            SeriesInfo {
                symbol: "BTCUSDT".into(),
                timeframe: "1m".into(),
                timeframe_secs: TF,
                rows: 20_000,
                first_ts: c.ts[0],
                last_ts: c.ts[19_999],
                version: 1,
                shared: false,
            }
        );
        let span = TF * CHUNK_BARS;
        let (first, last) = (c.ts[0], c.ts[19_999]);
        let ranges = [
            (i64::MIN, i64::MAX),
            (first, last),
            (first, first),
            (last, last),
            (-span, -1),
            (-span - TF, 0),
            (0, span - 1),
            (span - TF, span + TF),
            (first + 30, last - 30),
            (first - 10_000, first - 1),
            (last + 1, last + 10_000),
            (500, 400),
        ];
        let shared = CandleCache::new(64 << 20);
        for (start, end) in ranges {
            let want = c.range(start, end);
            // A fresh cache goes to Redis; the shared one may not.
            let (got, version) = load(
                &t.store,
                &CandleCache::new(64 << 20),
                "BTCUSDT",
                start,
                end,
                1,
            )
            .await;
            assert_same(&got, &want);
            assert_eq!(version, 1);
            let (got, _) = load(&t.store, &shared, "btcusdt", start, end, 0).await;
            assert_same(&got, &want);
        }
        assert_eq!(
            shared.remote_loads(),
            1,
            "the first load covered every chunk"
        );
        assert_eq!(shared.hits(), ranges.len() as u64 - 1);
        let chunks: Vec<i64> = {
            let mut conn = t.store.connection();
            let meta: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(t.store.keys().series("BTCUSDT", TF))
                .query_async(&mut conn)
                .await
                .unwrap();
            let mut nos: Vec<i64> = meta
                .keys()
                .filter_map(|k| k.strip_prefix("chunk:")?.parse().ok())
                .collect();
            nos.sort_unstable();
            nos
        };
        let want_chunks: Vec<i64> = (first.div_euclid(span)..=last.div_euclid(span)).collect();
        assert_eq!(chunks, want_chunks);
    }

    #[tokio::test]
    async fn overlapping_imports_merge() {
        let t = TestRedis::start("merge").await;
        let a = data();
        // Same timestamps from bar 5000 on, other prices, and 5000 more bars.
        let b = synth(15_000, 8, TF, a.ts[5_000], 50.0);
        t.store.import_candles("ETH", TF, &a).await.unwrap();
        let info = t.store.import_candles("ETH", TF, &b).await.unwrap();
        let mut want = a.range(i64::MIN, a.ts[4_999]);
        for i in 0..b.len() {
            push_row(&mut want, &b, i);
        }
        assert_eq!(info.rows, want.len() as u64);
        assert_eq!(
            (info.first_ts, info.last_ts, info.version),
            (a.ts[0], b.ts[14_999], 2)
        );
        let (got, version) = load(
            &t.store,
            &CandleCache::new(1 << 30),
            "ETH",
            i64::MIN,
            i64::MAX,
            2,
        )
        .await;
        assert_same(&got, &want);
        assert_eq!(version, 2);

        // An import inside one chunk rewrites only that chunk.
        let mut one = Candles::new();
        push_row(&mut one, &a, 10);
        one.close[0] = one.open[0];
        let info = t.store.import_candles("ETH", TF, &one).await.unwrap();
        assert_eq!((info.rows, info.version), (want.len() as u64, 3));
        let mut conn = t.store.connection();
        let meta: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(t.store.keys().series("ETH", TF))
            .query_async(&mut conn)
            .await
            .unwrap();
        let touched = format!("chunk:{}", a.ts[10].div_euclid(TF * CHUNK_BARS));
        for (name, value) in &meta {
            if name == &touched {
                assert_eq!(value, "3");
            } else if name.starts_with("chunk:") {
                assert_ne!(value, "3", "{name}");
            }
        }
        want.close[10] = want.open[10];
        let (got, _) = load(
            &t.store,
            &CandleCache::new(1 << 30),
            "ETH",
            i64::MIN,
            i64::MAX,
            3,
        )
        .await;
        assert_same(&got, &want);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_imports_all_land() {
        let t = TestRedis::start("concurrent-import").await;
        let all = synth(8 * 3_000, 3, TF, 1_700_000_000, 10.0);
        let mut handles = Vec::new();
        for part in 0..8 {
            let store = t.store.clone();
            let slice = all.range(all.ts[part * 3_000], all.ts[part * 3_000 + 2_999]);
            handles.push(tokio::spawn(async move {
                store.import_candles("SOL", TF, &slice).await.unwrap()
            }));
        }
        for h in handles {
            h.await.unwrap();
        }
        let info = t.store.series_info("sol", TF).await.unwrap().unwrap();
        assert_eq!((info.rows, info.version), (all.len() as u64, 8));
        assert_eq!(
            (info.first_ts, info.last_ts),
            (all.ts[0], *all.ts.last().unwrap())
        );
        let (got, _) = load(
            &t.store,
            &CandleCache::new(1 << 30),
            "SOL",
            i64::MIN,
            i64::MAX,
            8,
        )
        .await;
        assert_same(&got, &all);

        // What makes the retry loop right: a write against a version that
        // is no longer current changes nothing.
        let meta_key = t.store.keys().series("SOL", TF);
        let chunk_key = t.store.keys().chunk("SOL", TF, 0);
        let mut conn = t.store.connection();
        let written: i64 = IMPORT
            .key(&meta_key)
            .key(t.store.keys().series_set())
            .key(&chunk_key)
            .arg(7)
            .arg("SOL:1m")
            .arg(b"junk".as_slice())
            .arg("version")
            .arg(99)
            .invoke_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(written, 0);
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&chunk_key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(exists, 0);
        assert_eq!(
            t.store.series_versions(&[("SOL", TF)]).await.unwrap(),
            [Some(8)]
        );
    }

    #[tokio::test]
    async fn cache_hit_needs_no_redis() {
        let mut t = TestRedis::start("cache-hit").await;
        let c = data();
        t.store.import_candles("BTC", TF, &c).await.unwrap();
        let cache = CandleCache::new(64 << 20);
        let (a, b) = (c.ts[100], c.ts[9_000]);
        load(&t.store, &cache, "BTC", a, b, 1).await;
        assert_eq!((cache.remote_loads(), cache.hits()), (1, 0));
        // With the server gone, only the cache can answer.
        t.server.kill().unwrap();
        for _ in 0..1_000 {
            let (got, version) = load(&t.store, &cache, "BTC", a + 60, b - 60, 1).await;
            assert_same(&got, &c.range(a + 60, b - 60));
            assert_eq!(version, 1);
        }
        assert_eq!((cache.remote_loads(), cache.hits()), (1, 1_000));
    }

    #[tokio::test]
    async fn newer_version_invalidates() {
        let t = TestRedis::start("invalidate").await;
        let c = data();
        let first = c.range(i64::MIN, c.ts[14_999]);
        t.store.import_candles("BTC", TF, &first).await.unwrap();
        let cache = CandleCache::new(64 << 20);
        let (got, v) = load(&t.store, &cache, "BTC", i64::MIN, i64::MAX, 1).await;
        assert_same(&got, &first);
        assert_eq!(v, 1);

        let info = t
            .store
            .import_candles("BTC", TF, &c.range(c.ts[15_000], i64::MAX))
            .await
            .unwrap();
        assert_eq!(info.version, 2);
        // A task submitted before the import may still read version 1.
        let (got, v) = load(&t.store, &cache, "BTC", i64::MIN, i64::MAX, 1).await;
        assert_same(&got, &first);
        assert_eq!((v, cache.remote_loads()), (1, 1));
        // One submitted after it may not.
        let (got, v) = load(&t.store, &cache, "BTC", i64::MIN, i64::MAX, 2).await;
        assert_same(&got, &c);
        assert_eq!((v, cache.remote_loads()), (2, 2));
        let (got, v) = load(&t.store, &cache, "BTC", c.ts[1], c.ts[19_998], 2).await;
        assert_same(&got, &c.range(c.ts[1], c.ts[19_998]));
        assert_eq!((v, cache.remote_loads()), (2, 2));
        // A version Redis does not have is an error, not old data.
        let e = t
            .store
            .load_candles(&CandleCache::new(1 << 20), "BTC", TF, 0, 1, 3)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NotFound { .. }), "{e}");
    }

    #[tokio::test]
    async fn corrupt_chunk_is_reported_with_its_key() {
        let t = TestRedis::start("corrupt").await;
        let c = data();
        t.store.import_candles("BTC", TF, &c).await.unwrap();
        let no = c.ts[5_000].div_euclid(TF * CHUNK_BARS);
        let key = t.store.keys().chunk("BTC", TF, no);
        let mut conn = t.store.connection();
        let mut bytes: Vec<u8> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        bytes[100] ^= 0x04;
        let _: () = redis::cmd("SET")
            .arg(&key)
            .arg(&bytes)
            .query_async(&mut conn)
            .await
            .unwrap();
        let e = t
            .store
            .load_candles(&CandleCache::new(1 << 30), "BTC", TF, i64::MIN, i64::MAX, 0)
            .await
            .unwrap_err();
        match e {
            StoreError::Corrupt { key: k, reason } => {
                assert_eq!(k, key);
                assert!(reason.contains("crc"), "{reason}");
            }
            other => panic!("{other}"),
        }
        // Importing over it refuses too, rather than merging garbage.
        let e = t
            .store
            .import_candles("BTC", TF, &c.range(c.ts[5_000], c.ts[5_000]))
            .await
            .unwrap_err();
        assert!(
            matches!(e, StoreError::Corrupt { key: ref k, .. } if *k == key),
            "{e}"
        );
    }

    #[tokio::test]
    async fn bad_input_and_unknown_series() {
        let t = TestRedis::start("bad-input").await;
        let cache = CandleCache::new(1 << 20);
        let e = t
            .store
            .load_candles(&cache, "NOPE", TF, 0, 10, 0)
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "candles NOPE 1m not found");
        for symbol in ["", "a:b", "a b", "x".repeat(33).as_str(), "é"] {
            let e = t
                .store
                .import_candles(symbol, TF, &data())
                .await
                .unwrap_err();
            assert!(
                matches!(e, StoreError::Invalid { ref field, .. } if field == "symbol"),
                "{e}"
            );
        }
        let e = t.store.import_candles("X", 0, &data()).await.unwrap_err();
        assert!(
            matches!(e, StoreError::Invalid { ref field, .. } if field == "timeframe"),
            "{e}"
        );
        let e = t
            .store
            .import_candles("X", TF, &Candles::new())
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Invalid { .. }), "{e}");
        let mut bad = data();
        bad.high[3] = bad.low[3] - 1.0;
        let e = t.store.import_candles("X", TF, &bad).await.unwrap_err();
        assert!(e.to_string().contains("bar 3"), "{e}");
        assert!(t.store.list_series().await.unwrap().is_empty());
        assert_eq!(t.store.series_info("X", TF).await.unwrap(), None);
    }

    #[tokio::test]
    async fn listing_and_versions() {
        let t = TestRedis::start("listing").await;
        let c = synth(100, 1, 3_600, 1_700_000_000 - 1_700_000_000 % 3_600, 5.0);
        t.store.import_candles("eth", 3_600, &c).await.unwrap();
        t.store
            .import_candles("BTC", 86_400, &synth(10, 1, 86_400, 0, 5.0))
            .await
            .unwrap();
        t.store.import_candles("BTC", 3_600, &c).await.unwrap();
        t.store.import_candles("BTC", 3_600, &c).await.unwrap();
        let list = t.store.list_series().await.unwrap();
        let names: Vec<(String, String, u64, u64)> = list
            .iter()
            .map(|s| (s.symbol.clone(), s.timeframe.clone(), s.rows, s.version))
            .collect();
        assert_eq!(
            names,
            [
                ("BTC".into(), "1h".into(), 100, 2),
                ("BTC".into(), "1d".into(), 10, 1),
                ("ETH".into(), "1h".into(), 100, 1),
            ]
        );
        assert_eq!(
            list[0],
            t.store.series_info("btc", 3_600).await.unwrap().unwrap()
        );
        let versions = t
            .store
            .series_versions(&[("btc", 3_600), ("ETH", 3_600), ("ETH", 60), ("BTC", 86_400)])
            .await
            .unwrap();
        assert_eq!(versions, [Some(2), Some(1), None, Some(1)]);
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(t.store.keys().series_set())
            .query_async(&mut t.store.connection())
            .await
            .unwrap();
        assert_eq!(members.len(), 3);
        assert!(members.contains(&"BTC:1d".to_string()));
    }
}
