//! Walking Bybit's pages into a sink, resumably.
//!
//! A candle fetch asks the sink which bars it holds, works out the missing
//! ranges (before the first held bar, after the last, and holes between),
//! and walks each range backwards by `end` (docs/conventions/market-data.md, "Paging"): every page is
//! newest first, so the next page ends just before the oldest row seen.
//! Rows are reversed to ascending, deduplicated, clipped to the range, the
//! still-forming bar (open + interval > now) is dropped, and bars missing
//! inside the range are reported as [`Gap`]s, never filled. What arrives
//! is handed to the sink every `flush_bars` bars, so a killed fetch keeps
//! what it stored and a re-run asks only for the rest.

use crate::client::BybitClient;
use crate::interval::Interval;
use crate::parse::{self, Bar};
use crate::{Error, Result};
use stratbox_engine::candles::Candles;

/// Bybit's largest kline page (`limit` is 1..=1000).
pub const KLINE_PAGE: usize = 1000;
/// Bybit's largest funding-history page (`limit` is 1..=200).
pub const FUNDING_PAGE: usize = 200;
/// Pages walked per range at most before giving up: a year of 1-minute
/// bars is 526 pages, so this allows about 40 years; it only stops a
/// server that never runs out.
const MAX_PAGES: usize = 20_000;

/// Which klines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KlineKind {
    /// `/v5/market/kline`: trades, with volume.
    Trade,
    /// `/v5/market/mark-price-kline`: mark prices, no volume (stored as 0).
    Mark,
}

impl KlineKind {
    pub fn path(self) -> &'static str {
        match self {
            KlineKind::Trade => "/v5/market/kline",
            KlineKind::Mark => "/v5/market/mark-price-kline",
        }
    }
}

/// What to fetch: bars opening in `[start, end)`, unix seconds.
#[derive(Debug, Clone)]
pub struct CandleRequest {
    pub category: String,
    pub symbol: String,
    pub interval: Interval,
    pub kind: KlineKind,
    pub start: i64,
    pub end: i64,
}

impl CandleRequest {
    pub fn check(&self) -> Result<()> {
        if !matches!(self.category.as_str(), "linear" | "spot" | "inverse") {
            return Err(Error::invalid(
                "category",
                format!("`{}` is not linear, spot or inverse", self.category),
            ));
        }
        if self.kind == KlineKind::Mark && self.category == "spot" {
            return Err(Error::invalid("category", "spot has no mark prices"));
        }
        if self.symbol.is_empty()
            || !self
                .symbol
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        {
            return Err(Error::invalid(
                "symbol",
                format!(
                    "`{}` is not an uppercase Bybit symbol like BTCUSDT",
                    self.symbol
                ),
            ));
        }
        if self.start >= self.end {
            return Err(Error::invalid("start", "must be before end"));
        }
        Ok(())
    }
}

/// Where fetched bars go (a CSV file, the Redis store, memory in tests).
pub trait CandleSink {
    /// Open times (unix seconds, ascending) of the bars already held in
    /// `[start, end)`.
    fn held(&mut self, start: i64, end: i64) -> Result<Vec<i64>, String>;
    /// Stores ascending, deduplicated bars (they may precede what is held:
    /// ranges are walked backwards).
    fn store(&mut self, bars: &Candles) -> Result<(), String>;
}

/// Knobs of a fetch.
#[derive(Debug, Clone, Copy)]
pub struct FetchOptions {
    /// Wall clock, unix milliseconds: bars still forming at `now_ms` are
    /// dropped. Injected so tests are exact.
    pub now_ms: i64,
    /// Bars handed to the sink at once: what a kill can lose.
    pub flush_bars: usize,
    /// Rows asked per page.
    pub page: usize,
}

impl FetchOptions {
    pub fn new(now_ms: i64) -> FetchOptions {
        FetchOptions {
            now_ms,
            // Every full page: an interrupted run re-asks at most one
            // request. A store import of 1000 bars touches one or two
            // chunks, so a year of 1-minute bars (526 stores) stays far
            // above the 200,000 bars/s figure (see benches/parse.rs).
            flush_bars: KLINE_PAGE,
            page: KLINE_PAGE,
        }
    }
}

/// Bars missing inside a fetched range: `bars` bars from `first_missing`
/// (unix seconds) on. Reported, never filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub first_missing: i64,
    pub last_missing: i64,
    pub bars: u64,
}

/// What a fetch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchReport {
    /// Missing ranges asked for, `[start, end)` unix seconds.
    pub ranges: Vec<(i64, i64)>,
    /// Bars received and stored.
    pub fetched: u64,
    /// Bars the missing ranges should hold.
    pub expected: u64,
    /// Pages requested (not counting retries).
    pub pages: u64,
    /// Ascending by `first_missing`.
    pub gaps: Vec<Gap>,
}

/// `[start, end)` ranges on `interval`'s grid not covered by `held`
/// (ascending open times).
pub fn missing_ranges(held: &[i64], start: i64, end: i64, interval: Interval) -> Vec<(i64, i64)> {
    let secs = interval.secs();
    let mut out = Vec::new();
    let mut cur = interval.ceil(start);
    for &t in held.iter().filter(|&&t| t >= start && t < end) {
        if t > cur {
            out.push((cur, t));
        }
        cur = cur.max(t + secs);
    }
    if cur < end {
        out.push((cur, end));
    }
    out
}

/// The end (exclusive) of the bars closed at `now_ms`: a bar opening at
/// `t` is closed when `(t + secs) * 1000 <= now_ms`.
fn closed_end(now_ms: i64, interval: Interval) -> i64 {
    let secs = interval.secs();
    let last_open = (now_ms.div_euclid(1000) - secs).div_euclid(secs) * secs;
    // Back to the grid (weeks are anchored on Mondays).
    let mut t = interval.ceil(last_open - secs);
    while (t + secs) * 1000 <= now_ms {
        t += secs;
    }
    t
}

/// Fetches the bars `sink` lacks in the request's range. `progress` gets
/// `(fetched, expected)` after every page.
pub fn fetch_candles(
    client: &BybitClient,
    req: &CandleRequest,
    opts: FetchOptions,
    sink: &mut dyn CandleSink,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<FetchReport> {
    req.check()?;
    let iv = req.interval;
    let secs = iv.secs();
    let start = iv.ceil(req.start);
    let end = req.end.min(closed_end(opts.now_ms, iv));
    let mut report = FetchReport::default();
    if start >= end {
        return Ok(report);
    }
    let held = sink.held(start, end).map_err(Error::Sink)?;
    report.ranges = missing_ranges(&held, start, end, iv);
    report.expected = report
        .ranges
        .iter()
        .map(|(a, b)| ((b - a + secs - 1) / secs) as u64)
        .sum();
    progress(0, report.expected);
    // Newest range first, as pages go: what a kill leaves is contiguous
    // up to the end.
    for &(a, b) in report.ranges.clone().iter().rev() {
        walk_range(client, req, opts, a, b, sink, &mut report, progress)?;
    }
    report.gaps.sort_by_key(|g| g.first_missing);
    Ok(report)
}

/// Pages collected newest first, handed to the sink ascending.
struct Batch {
    pages: Vec<Vec<Bar>>,
    len: usize,
}

impl Batch {
    fn flush(&mut self, endpoint: &str, sink: &mut dyn CandleSink) -> Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        let mut c = Candles::with_capacity(self.len);
        for page in self.pages.iter().rev() {
            for b in page.iter().rev() {
                c.push(b.ts_ms / 1000, b.open, b.high, b.low, b.close, b.volume);
            }
        }
        c.validate().map_err(|e| {
            Error::shape(endpoint, "result.list", format!("an impossible bar: {e}"))
        })?;
        sink.store(&c).map_err(Error::Sink)?;
        self.pages.clear();
        self.len = 0;
        Ok(())
    }
}

#[allow(clippy::too_many_arguments)]
fn walk_range(
    client: &BybitClient,
    req: &CandleRequest,
    opts: FetchOptions,
    a: i64,
    b: i64,
    sink: &mut dyn CandleSink,
    report: &mut FetchReport,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let path = req.kind.path();
    let secs = req.interval.secs();
    let with_volume = req.kind == KlineKind::Trade;
    let mut batch = Batch {
        pages: Vec::new(),
        len: 0,
    };
    // The newest bar still expected (walking down), for gap detection.
    let mut expected = b - secs;
    // Only rows older than this are new (pages may overlap).
    let mut below_ms = b * 1000;
    let mut end_ms = b * 1000 - 1;
    let mut raw = Vec::with_capacity(opts.page);
    for _ in 0..MAX_PAGES {
        let query = [
            ("category", req.category.clone()),
            ("symbol", req.symbol.clone()),
            ("interval", req.interval.code().to_string()),
            ("start", (a * 1000).to_string()),
            ("end", end_ms.to_string()),
            ("limit", opts.page.to_string()),
        ];
        let body = client.get(path, &query)?;
        report.pages += 1;
        raw.clear();
        parse::klines(path, &body, with_volume, &mut raw)?;
        let mut page = Vec::with_capacity(raw.len());
        let mut oldest_ms = i64::MAX;
        for bar in &raw {
            oldest_ms = oldest_ms.min(bar.ts_ms);
            let t = bar.ts_ms.div_euclid(1000);
            let closed = (t + secs) * 1000 <= opts.now_ms;
            // Newest first: a row not below the last kept one is a duplicate.
            if bar.ts_ms >= below_ms || t < a || !closed {
                continue;
            }
            if bar.ts_ms % 1000 != 0 || !req.interval.on_grid(t) {
                return Err(Error::shape(
                    path,
                    "result.list[].startTime",
                    format!(
                        "{} is not a bar open of interval {}",
                        bar.ts_ms,
                        req.interval.code()
                    ),
                ));
            }
            if t < expected {
                report.gaps.push(Gap {
                    first_missing: t + secs,
                    last_missing: expected,
                    bars: ((expected - t) / secs) as u64,
                });
            }
            expected = t - secs;
            below_ms = bar.ts_ms;
            page.push(*bar);
        }
        report.fetched += page.len() as u64;
        batch.len += page.len();
        batch.pages.push(page);
        if batch.len >= opts.flush_bars {
            batch.flush(path, sink)?;
        }
        progress(report.fetched, report.expected);
        let done = raw.len() < opts.page || oldest_ms <= a * 1000;
        if done {
            break;
        }
        if oldest_ms > end_ms {
            return Err(Error::Stalled {
                endpoint: path.to_string(),
                at_ms: end_ms,
            });
        }
        end_ms = oldest_ms - 1;
    }
    batch.flush(path, sink)?;
    if expected >= a {
        report.gaps.push(Gap {
            first_missing: a,
            last_missing: expected,
            bars: ((expected - a) / secs + 1) as u64,
        });
    }
    Ok(())
}

/// One funding settlement: unix seconds and the rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FundingRate {
    pub ts: i64,
    pub rate: f64,
}

/// Funding settlements in `[start, end)` (unix seconds) that are not
/// already known: before the first held one and after the last (`held`
/// ascending). Ascending, deduplicated.
pub fn fetch_funding(
    client: &BybitClient,
    category: &str,
    symbol: &str,
    start: i64,
    end: i64,
    held: &[i64],
) -> Result<Vec<FundingRate>> {
    const PATH: &str = "/v5/market/funding/history";
    if category == "spot" {
        return Err(Error::invalid("category", "spot has no funding"));
    }
    let inside: Vec<i64> = held
        .iter()
        .copied()
        .filter(|t| *t >= start && *t < end)
        .collect();
    let ranges = match (inside.first(), inside.last()) {
        (Some(&f), Some(&l)) => vec![(start, f), (l + 1, end)],
        _ => vec![(start, end)],
    };
    let mut out = Vec::new();
    let mut rows = Vec::with_capacity(FUNDING_PAGE);
    for (a, b) in ranges.into_iter().filter(|(a, b)| a < b) {
        let mut end_ms = b * 1000 - 1;
        let mut below_ms = b * 1000;
        let mut part = Vec::new();
        for _ in 0..MAX_PAGES {
            let query = [
                ("category", category.to_string()),
                ("symbol", symbol.to_string()),
                // Bybit refuses startTime without endTime; both are sent.
                ("startTime", (a * 1000).to_string()),
                ("endTime", end_ms.to_string()),
                ("limit", FUNDING_PAGE.to_string()),
            ];
            let body = client.get(PATH, &query)?;
            rows.clear();
            parse::funding(PATH, &body, &mut rows)?;
            let oldest = rows.iter().map(|r| r.0).min().unwrap_or(i64::MAX);
            for &(ts_ms, rate) in &rows {
                if ts_ms < below_ms && ts_ms >= a * 1000 {
                    part.push(FundingRate {
                        ts: ts_ms.div_euclid(1000),
                        rate,
                    });
                    below_ms = ts_ms;
                }
            }
            if rows.len() < FUNDING_PAGE || oldest <= a * 1000 {
                break;
            }
            if oldest > end_ms {
                return Err(Error::Stalled {
                    endpoint: PATH.to_string(),
                    at_ms: end_ms,
                });
            }
            end_ms = oldest - 1;
        }
        part.reverse();
        out.extend(part);
    }
    out.sort_by_key(|r| r.ts);
    out.dedup_by_key(|r| r.ts);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_ranges_cover_ends_and_holes() {
        let h = Interval::parse("60").unwrap();
        let held = [7_200, 10_800, 18_000];
        assert_eq!(
            missing_ranges(&held, 0, 25_200, h),
            [(0, 7_200), (14_400, 18_000), (21_600, 25_200)]
        );
        assert_eq!(missing_ranges(&[], 1, 7_200, h), [(3_600, 7_200)]);
        assert_eq!(missing_ranges(&[0, 3_600], 0, 7_200, h), []);
    }

    #[test]
    fn forming_bar_is_not_closed() {
        let h = Interval::parse("60").unwrap();
        // At 10:30 the 10:00 bar is forming; bars end at 10:00.
        assert_eq!(closed_end(37_800_000, h), 36_000);
        assert_eq!(closed_end(36_000_000, h), 36_000);
        assert_eq!(closed_end(35_999_999, h), 32_400);
    }
}
