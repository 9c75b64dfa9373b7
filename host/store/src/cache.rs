//! The worker-side candle cache: decoded chunks shared by every task slot
//! of a worker, so thousands of small backtests over the same range cost
//! no Redis round trip.
//!
//! A chunk is tagged with the series version that last *wrote* it (the
//! `chunk:{no}` field of the meta), not the version it was read at: an
//! import that touches chunk 9 leaves chunks 0..8 valid in the cache. The
//! cache also keeps the latest series meta it has seen; a load is served
//! locally when that meta is at least the version the task asks for and
//! every chunk it lists in the range is held at the listed write version,
//! which is exactly the snapshot Redis held at that meta version.

use super::series::SeriesMeta;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use stratbox_engine::candles::Candles;

/// Decoded chunks under a byte budget, least recently used evicted first.
/// Series metas are tiny and not counted.
pub struct CandleCache {
    budget: usize,
    inner: Mutex<Inner>,
    remote_loads: AtomicU64,
    hits: AtomicU64,
}

#[derive(Default)]
struct Inner {
    /// symbol -> timeframe_secs -> series.
    series: HashMap<Arc<str>, HashMap<i64, SeriesEntry>>,
    /// Use tick -> chunk; the first entry is the least recently used.
    lru: BTreeMap<u64, (Arc<str>, i64, i64)>,
    tick: u64,
    bytes: usize,
}

struct SeriesEntry {
    meta: Arc<SeriesMeta>,
    chunks: HashMap<i64, ChunkEntry>,
}

struct ChunkEntry {
    written: u64,
    data: Arc<Candles>,
    tick: u64,
    bytes: usize,
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// The meta and the chunks of the range, in chunk order.
    Hit(Arc<SeriesMeta>, Vec<Arc<Candles>>),
    /// Not servable locally; the chunks of the range held, by number, with
    /// their write version, so Redis need not send them again.
    Miss(BTreeMap<i64, (u64, Arc<Candles>)>),
}

impl CandleCache {
    pub fn new(budget_bytes: usize) -> CandleCache {
        CandleCache {
            budget: budget_bytes,
            inner: Mutex::new(Inner::default()),
            remote_loads: AtomicU64::new(0),
            hits: AtomicU64::new(0),
        }
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Decoded bytes held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Chunks held.
    pub fn chunks(&self) -> usize {
        self.lock().lru.len()
    }

    /// Loads that went to Redis.
    pub fn remote_loads(&self) -> u64 {
        self.remote_loads.load(Ordering::Relaxed)
    }

    /// Loads served without Redis.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    pub fn clear(&self) {
        *self.lock() = Inner::default();
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic mid-update leaves at worst a wrong byte count; the data
        // itself is immutable behind Arcs.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn note_remote_load(&self) {
        self.remote_loads.fetch_add(1, Ordering::Relaxed);
    }

    /// The chunks `lo..=hi` of a series, if the cached meta is at least
    /// `min_version` and every chunk it lists there is held.
    pub(crate) fn lookup(
        &self,
        symbol: &str,
        tf: i64,
        lo: i64,
        hi: i64,
        min_version: u64,
    ) -> Lookup {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(entry) = inner.series.get_mut(symbol).and_then(|s| s.get_mut(&tf)) else {
            return Lookup::Miss(BTreeMap::new());
        };
        let complete = entry.meta.version >= min_version
            && entry
                .meta
                .chunks_in(lo, hi)
                .all(|(no, w)| entry.chunks.get(no).is_some_and(|c| c.written == *w));
        if !complete {
            let held = entry
                .chunks
                .iter()
                .filter(|(no, _)| (lo..=hi).contains(*no))
                .map(|(no, c)| (*no, (c.written, c.data.clone())))
                .collect();
            return Lookup::Miss(held);
        }
        let mut out = Vec::new();
        for (no, _) in entry.meta.chunks_in(lo, hi) {
            if let Some(c) = entry.chunks.get_mut(no) {
                inner.tick += 1;
                if let Some(key) = inner.lru.remove(&c.tick) {
                    inner.lru.insert(inner.tick, key);
                }
                c.tick = inner.tick;
                out.push(c.data.clone());
            }
        }
        let meta = entry.meta.clone();
        drop(guard);
        self.hits.fetch_add(1, Ordering::Relaxed);
        Lookup::Hit(meta, out)
    }

    /// Records what Redis returned: the meta (unless a newer one is held)
    /// and chunks with their write version (unless newer ones are held).
    pub(crate) fn insert(&self, meta: Arc<SeriesMeta>, chunks: Vec<(i64, u64, Arc<Candles>)>) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let symbol: Arc<str> = match inner.series.get_key_value(meta.symbol.as_str()) {
            Some((k, _)) => k.clone(),
            None => Arc::from(meta.symbol.as_str()),
        };
        let tf = meta.timeframe_secs;
        let entry = inner
            .series
            .entry(symbol.clone())
            .or_default()
            .entry(tf)
            .or_insert_with(|| SeriesEntry {
                meta: meta.clone(),
                chunks: HashMap::new(),
            });
        if meta.version > entry.meta.version {
            entry.meta = meta;
            // Chunks rewritten since are dead weight now.
            let stale: Vec<i64> = entry
                .chunks
                .iter()
                .filter(|(no, c)| entry.meta.chunks.get(*no) != Some(&c.written))
                .map(|(no, _)| *no)
                .collect();
            for no in stale {
                if let Some(c) = entry.chunks.remove(&no) {
                    inner.lru.remove(&c.tick);
                    inner.bytes -= c.bytes;
                }
            }
        }
        for (no, written, data) in chunks {
            let bytes = super::chunk::decoded_bytes(data.len());
            if bytes > self.budget {
                continue;
            }
            if entry.chunks.get(&no).is_some_and(|c| c.written >= written) {
                continue;
            }
            inner.tick += 1;
            let fresh = ChunkEntry {
                written,
                data,
                tick: inner.tick,
                bytes,
            };
            if let Some(old) = entry.chunks.insert(no, fresh) {
                inner.lru.remove(&old.tick);
                inner.bytes -= old.bytes;
            }
            inner.lru.insert(inner.tick, (symbol.clone(), tf, no));
            inner.bytes += bytes;
        }
        inner.evict(self.budget);
    }
}

impl Inner {
    fn evict(&mut self, budget: usize) {
        while self.bytes > budget {
            let Some((_, (symbol, tf, no))) = self.lru.pop_first() else {
                break;
            };
            let removed = self
                .series
                .get_mut(&symbol)
                .and_then(|s| s.get_mut(&tf))
                .and_then(|e| e.chunks.remove(&no));
            if let Some(c) = removed {
                self.bytes -= c.bytes;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(version: u64, chunks: &[(i64, u64)]) -> Arc<SeriesMeta> {
        Arc::new(SeriesMeta {
            symbol: "X".into(),
            timeframe_secs: 60,
            rows: 0,
            first_ts: 0,
            last_ts: 0,
            chunk_span_secs: 60 * 4096,
            version,
            chunks: chunks.iter().copied().collect(),
        })
    }

    fn rows(n: usize) -> Arc<Candles> {
        let mut c = Candles::new();
        for i in 0..n {
            c.push(i as i64, 1.0, 1.0, 1.0, 1.0, 1.0);
        }
        Arc::new(c)
    }

    #[test]
    fn hit_needs_version_and_every_listed_chunk() {
        let cache = CandleCache::new(1 << 20);
        assert!(matches!(cache.lookup("X", 60, 0, 5, 0), Lookup::Miss(_)));
        cache.insert(meta(2, &[(0, 1), (1, 2)]), vec![(0, 1, rows(2))]);
        // Chunk 1 missing.
        assert!(matches!(cache.lookup("X", 60, 0, 1, 0), Lookup::Miss(ref h) if h.len() == 1));
        // Chunk 0 alone is servable, but not at a newer version.
        assert!(matches!(cache.lookup("X", 60, 0, 0, 2), Lookup::Hit(_, ref c) if c.len() == 1));
        assert!(matches!(cache.lookup("X", 60, 0, 0, 3), Lookup::Miss(_)));
        cache.insert(meta(2, &[(0, 1), (1, 2)]), vec![(1, 2, rows(3))]);
        assert!(matches!(cache.lookup("X", 60, -5, 9, 1), Lookup::Hit(_, ref c) if c.len() == 2));
        // A newer meta rewriting chunk 1 drops the stale copy, keeps chunk 0.
        cache.insert(meta(3, &[(0, 1), (1, 3)]), vec![]);
        assert_eq!(cache.chunks(), 1);
        assert!(matches!(cache.lookup("X", 60, 0, 0, 3), Lookup::Hit(..)));
        assert!(matches!(cache.lookup("X", 60, 0, 1, 3), Lookup::Miss(_)));
        // An older meta never replaces a newer one.
        cache.insert(meta(2, &[(0, 1), (1, 2)]), vec![(1, 2, rows(3))]);
        assert!(matches!(cache.lookup("X", 60, 0, 1, 0), Lookup::Miss(_)));
    }

    #[test]
    fn evicts_least_recently_used_within_budget() {
        let cache = CandleCache::new(3 * 48 * 10);
        let m = meta(1, &[(0, 1), (1, 1), (2, 1), (3, 1)]);
        cache.insert(
            m.clone(),
            vec![(0, 1, rows(10)), (1, 1, rows(10)), (2, 1, rows(10))],
        );
        assert_eq!(cache.bytes(), 3 * 480);
        // Touch 0, so 1 is the least recently used.
        assert!(matches!(cache.lookup("X", 60, 0, 0, 1), Lookup::Hit(..)));
        cache.insert(m.clone(), vec![(3, 1, rows(10))]);
        assert_eq!(cache.chunks(), 3);
        assert!(cache.bytes() <= cache.budget());
        assert!(matches!(cache.lookup("X", 60, 0, 0, 1), Lookup::Hit(..)));
        assert!(matches!(cache.lookup("X", 60, 1, 1, 1), Lookup::Miss(_)));
        assert!(matches!(cache.lookup("X", 60, 2, 3, 1), Lookup::Hit(..)));
        // Too big for the whole budget: not cached at all.
        cache.insert(m, vec![(1, 1, rows(100))]);
        assert_eq!(cache.chunks(), 3);
        cache.clear();
        assert_eq!((cache.chunks(), cache.bytes()), (0, 0));
    }
}
