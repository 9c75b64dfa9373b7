//! The fetcher's parse-and-store figure (issue 20: at least 200,000
//! candles/s, a year of 1-minute bars in under 3 s once downloaded).
//!
//! A year of 1-minute bars (525,600) is cut into Bybit's 1000-row kline
//! pages, newest first, as JSON bodies in memory. Measured: (1) parsing
//! every page and turning it into ascending `Candles`; (2) the same plus
//! an import into a private redis-server per page, as `--redis` does;
//! (3) the whole fetcher (`fetch_candles`) over loopback HTTP from the
//! local fake server into the same store. Prints candles/s for each.
//!
//! `cargo bench -p stratbox-marketdata --bench parse`

use std::time::Instant;
use stratbox_engine::candles::Candles;
use stratbox_marketdata::fake::{kline_result, ok, walk, FakeBybit, Market};
use stratbox_marketdata::parse::{klines, Bar};
use stratbox_marketdata::{
    fetch_candles, BybitClient, CandleRequest, CandleSink, ClientConfig, FetchOptions, Interval,
    KlineKind,
};
use stratbox_store::test_support::TestRedis;
use stratbox_store::Store;

/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200;
/// A (non-leap) year of 1-minute bars.
const BARS: usize = 525_600;
const PAGE: usize = 1_000;

fn page_to_candles(bars: &[Bar]) -> Candles {
    let mut c = Candles::with_capacity(bars.len());
    for b in bars.iter().rev() {
        c.push(b.ts_ms / 1000, b.open, b.high, b.low, b.close, b.volume);
    }
    c
}

struct StoreSink<'a> {
    rt: &'a tokio::runtime::Runtime,
    store: Store,
}

impl CandleSink for StoreSink<'_> {
    fn held(&mut self, _: i64, _: i64) -> Result<Vec<i64>, String> {
        Ok(Vec::new())
    }
    fn store(&mut self, bars: &Candles) -> Result<(), String> {
        self.rt
            .block_on(self.store.import_candles("BENCH2", 60, bars))
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn main() {
    let market = walk(BARS, T0, 60);
    let rows: Vec<(i64, [f64; 5])> = market.iter().rev().map(|(t, v)| (*t, *v)).collect();
    let bodies: Vec<String> = rows
        .chunks(PAGE)
        .map(|page| {
            ok(&kline_result(
                "linear",
                "BTCUSDT",
                page.iter().map(|(t, v)| (*t, v)),
                true,
            ))
        })
        .collect();
    let bytes: usize = bodies.iter().map(String::len).sum();
    println!(
        "{BARS} 1-minute bars in {} pages, {:.1} MB of JSON",
        bodies.len(),
        bytes as f64 / 1e6
    );

    let rate = |n: usize, secs: f64| n as f64 / secs;
    // (1) Parse and convert.
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let mut bars = Vec::with_capacity(PAGE);
        let mut total = 0;
        for body in &bodies {
            bars.clear();
            klines("/v5/market/kline", body, true, &mut bars).expect("a well-formed page");
            total += page_to_candles(&bars).len();
        }
        assert_eq!(total, BARS);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "parse + convert:        {best:.3} s, {:.0} candles/s (best of 3)",
        rate(BARS, best)
    );

    // (2) Parse, convert and import into Redis page by page.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let redis = rt.block_on(TestRedis::start("marketdata-bench"));
    let t = Instant::now();
    let mut bars = Vec::with_capacity(PAGE);
    for body in &bodies {
        bars.clear();
        klines("/v5/market/kline", body, true, &mut bars).expect("a well-formed page");
        rt.block_on(
            redis
                .store
                .import_candles("BENCH", 60, &page_to_candles(&bars)),
        )
        .expect("stored");
    }
    let secs = t.elapsed().as_secs_f64();
    let info = rt
        .block_on(redis.store.series_info("BENCH", 60))
        .expect("info")
        .expect("a series");
    assert_eq!(info.rows as usize, BARS);
    println!(
        "parse + convert + store: {secs:.3} s, {:.0} candles/s",
        rate(BARS, secs)
    );

    // (3) The whole fetcher over loopback HTTP into the store.
    let fake = FakeBybit::start(Market {
        bars: market,
        ..Market::default()
    });
    let client = BybitClient::new(&ClientConfig {
        base_url: fake.url().to_string(),
        ..ClientConfig::default()
    })
    .expect("a client");
    let req = CandleRequest {
        category: "linear".into(),
        symbol: "BTCUSDT".into(),
        interval: Interval::parse("1").expect("1 minute"),
        kind: KlineKind::Trade,
        start: T0,
        end: T0 + BARS as i64 * 60,
    };
    let mut sink = StoreSink {
        rt: &rt,
        store: redis.store.clone(),
    };
    let t = Instant::now();
    let report = fetch_candles(
        &client,
        &req,
        FetchOptions::new((T0 + BARS as i64 * 60) * 1000),
        &mut sink,
        &mut |_, _| {},
    )
    .expect("fetched");
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(report.fetched as usize, BARS);
    println!(
        "fetch over loopback HTTP (server formats each page too) + store: {secs:.3} s, {:.0} candles/s",
        rate(BARS, secs)
    );
}
