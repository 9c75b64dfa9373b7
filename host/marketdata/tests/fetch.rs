//! The fetcher against a local server answering in Bybit's exact shape
//! (`fake::FakeBybit`): paging, the forming bar, errors, throttling, a
//! killed and resumed fetch, gaps, bad answers, funding and instruments.

// clippy.toml's allow-unwrap-in-tests covers `#[test]` functions only, not
// the helpers here.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stratbox_engine::candles::Candles;
use stratbox_marketdata::fake::{walk, FakeBybit, Fault, Market};
use stratbox_marketdata::instrument::fetch_instrument;
use stratbox_marketdata::{
    fetch_candles, fetch_funding, BybitClient, CandleRequest, CandleSink, ClientConfig, Error,
    FetchOptions, Gap, Interval, KlineKind, Retry,
};

/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200;
const H: i64 = 3_600;

/// Bars in memory; counts the stores.
#[derive(Default)]
struct Memory {
    bars: BTreeMap<i64, [f64; 5]>,
    stores: usize,
}

impl CandleSink for Memory {
    fn held(&mut self, start: i64, end: i64) -> Result<Vec<i64>, String> {
        Ok(self.bars.range(start..end).map(|(t, _)| *t).collect())
    }
    fn store(&mut self, c: &Candles) -> Result<(), String> {
        c.validate().map_err(|e| e.to_string())?;
        for i in 0..c.len() {
            self.bars.insert(
                c.ts[i],
                [c.open[i], c.high[i], c.low[i], c.close[i], c.volume[i]],
            );
        }
        self.stores += 1;
        Ok(())
    }
}

fn client(fake: &FakeBybit) -> (BybitClient, Arc<Mutex<Vec<Duration>>>) {
    let slept = Arc::new(Mutex::new(Vec::new()));
    let s = slept.clone();
    let c = BybitClient::new(&ClientConfig {
        base_url: fake.url().to_string(),
        ..ClientConfig::default()
    })
    .unwrap()
    .with_sleep(move |d| s.lock().unwrap().push(d));
    (c, slept)
}

fn request(start: i64, end: i64) -> CandleRequest {
    CandleRequest {
        category: "linear".into(),
        symbol: "BTCUSDT".into(),
        interval: Interval::parse("60").unwrap(),
        kind: KlineKind::Trade,
        start,
        end,
    }
}

/// A clock long after every bar.
fn later() -> FetchOptions {
    FetchOptions::new((T0 + 10_000 * H) * 1000)
}

/// The market's bars keyed by seconds, as the sink keeps them.
fn secs(m: &BTreeMap<i64, [f64; 5]>) -> BTreeMap<i64, [f64; 5]> {
    m.iter().map(|(t, v)| (t / 1000, *v)).collect()
}

fn kline_requests(fake: &FakeBybit) -> Vec<(i64, i64)> {
    fake.seen()
        .iter()
        .filter(|s| s.path == "/v5/market/kline")
        .map(|s| (s.num("start"), s.num("end")))
        .collect()
}

#[test]
fn pages_walked_backwards_reversed_and_deduplicated() {
    let bars = walk(2_500, T0, H);
    let fake = FakeBybit::start(Market {
        bars: bars.clone(),
        overlap: 3,
        ..Market::default()
    });
    let (c, _) = client(&fake);
    let mut sink = Memory::default();
    let mut calls = Vec::new();
    let report = fetch_candles(
        &c,
        &request(T0, T0 + 2_500 * H),
        later(),
        &mut sink,
        &mut |done, total| calls.push((done, total)),
    )
    .unwrap();
    assert_eq!(sink.bars, secs(&bars));
    assert_eq!(
        (report.fetched, report.expected, report.pages),
        (2_500, 2_500, 3)
    );
    assert!(report.gaps.is_empty(), "{:?}", report.gaps);
    // Backwards by `end`: each page ends just before the oldest row seen.
    let end0 = (T0 + 2_500 * H) * 1000 - 1;
    assert_eq!(
        kline_requests(&fake),
        [
            (T0 * 1000, end0),
            (T0 * 1000, (T0 + 1_500 * H) * 1000 - 1),
            (T0 * 1000, (T0 + 500 * H) * 1000 - 1),
        ]
    );
    assert_eq!(calls.first(), Some(&(0, 2_500)));
    assert_eq!(calls.last(), Some(&(2_500, 2_500)));
    let q = &fake.seen()[0].query;
    assert_eq!(
        (
            q["category"].as_str(),
            q["interval"].as_str(),
            q["limit"].as_str()
        ),
        ("linear", "60", "1000")
    );
}

#[test]
fn forming_candle_is_dropped() {
    let bars = walk(50, T0, H);
    let fake = FakeBybit::start(Market {
        bars: bars.clone(),
        ..Market::default()
    });
    let (c, _) = client(&fake);
    let mut sink = Memory::default();
    // Half an hour into the last bar: it is still forming.
    let now = (T0 + 49 * H + 1_800) * 1000;
    let report = fetch_candles(
        &c,
        &request(T0, T0 + 100 * H),
        FetchOptions::new(now),
        &mut sink,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(sink.bars.len(), 49);
    assert_eq!(sink.bars.keys().last(), Some(&(T0 + 48 * H)));
    assert_eq!((report.fetched, report.expected), (49, 49));
    assert!(report.gaps.is_empty(), "{:?}", report.gaps);
    // Nothing is asked past the last closed bar.
    assert_eq!(kline_requests(&fake)[0].1, (T0 + 49 * H) * 1000 - 1);
}

#[test]
fn ret_code_10001_is_reported_with_its_message() {
    let fake = FakeBybit::start(Market {
        bars: walk(10, T0, H),
        faults: BTreeMap::from([(
            0,
            Fault::RetCode(10001, "params error: symbol invalid".into()),
        )]),
        ..Market::default()
    });
    let (c, slept) = client(&fake);
    let e = fetch_candles(
        &c,
        &request(T0, T0 + 10 * H),
        later(),
        &mut Memory::default(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::Api { code: 10001, message, .. } if message == "params error: symbol invalid"),
        "{e}"
    );
    assert_eq!(
        e.to_string(),
        "bybit /v5/market/kline: retCode 10001: params error: symbol invalid"
    );
    assert_eq!(fake.seen().len(), 1, "a bad parameter is not retried");
    assert!(slept.lock().unwrap().is_empty());
}

#[test]
fn throttling_is_retried_with_backoff() {
    let bars = walk(10, T0, H);
    let fake = FakeBybit::start(Market {
        bars: bars.clone(),
        faults: BTreeMap::from([
            (0, Fault::RetCode(10006, "Too many visits!".into())),
            (1, Fault::Status(403)),
            (2, Fault::Status(429)),
        ]),
        ..Market::default()
    });
    let (c, slept) = client(&fake);
    let mut sink = Memory::default();
    fetch_candles(
        &c,
        &request(T0, T0 + 10 * H),
        later(),
        &mut sink,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(sink.bars, secs(&bars));
    assert_eq!(fake.seen().len(), 4);
    let ms: Vec<u128> = slept
        .lock()
        .unwrap()
        .iter()
        .map(Duration::as_millis)
        .collect();
    assert_eq!(ms, [500, 1_000, 2_000], "exponential backoff");

    // Bounded: still throttled after every attempt is an error.
    let fake = FakeBybit::start(Market {
        bars,
        faults: (0..10).map(|n| (n, Fault::Status(403))).collect(),
        ..Market::default()
    });
    let c = BybitClient::new(&ClientConfig {
        base_url: fake.url().to_string(),
        retry: Retry {
            attempts: 3,
            ..Retry::default()
        },
        ..ClientConfig::default()
    })
    .unwrap()
    .with_sleep(|_| {});
    let e = fetch_candles(
        &c,
        &request(T0, T0 + 10 * H),
        later(),
        &mut Memory::default(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(matches!(e, Error::Throttled { attempts: 3, .. }), "{e}");
    assert_eq!(fake.seen().len(), 3);
}

#[test]
fn killed_fetch_resumes_asking_only_for_what_is_missing() {
    let bars = walk(3_500, T0, H);
    let fake = FakeBybit::start(Market {
        bars: bars.clone(),
        overlap: 1,
        // Pages 1 and 2 answer, then the server goes bad.
        fail_from: Some(2),
        ..Market::default()
    });
    let (c, _) = client(&fake);
    let mut sink = Memory::default();
    let mut opts = later();
    opts.flush_bars = 1_000;
    let req = request(T0, T0 + 3_500 * H);
    let e = fetch_candles(&c, &req, opts, &mut sink, &mut |_, _| {}).unwrap_err();
    assert!(matches!(e, Error::Http { status: 500, .. }), "{e}");
    // What arrived before the failure was stored: the newest 2000 bars.
    assert_eq!(sink.bars.len(), 2_000);
    let first_held = *sink.bars.keys().next().unwrap();
    assert_eq!(first_held, T0 + 1_500 * H);

    fake.edit(|m| m.fail_from = None);
    fake.clear_seen();
    let report = fetch_candles(&c, &req, opts, &mut sink, &mut |_, _| {}).unwrap();
    assert_eq!(sink.bars, secs(&bars));
    assert_eq!(report.ranges, [(T0, first_held)]);
    assert_eq!((report.fetched, report.expected), (1_500, 1_500));
    // Only the missing range was asked for: every request ends before
    // the first bar held.
    let asked = kline_requests(&fake);
    assert_eq!(asked.len(), 2);
    assert_eq!(asked[0], (T0 * 1000, first_held * 1000 - 1));
    assert!(
        asked
            .iter()
            .all(|&(s, e)| s >= T0 * 1000 && e < first_held * 1000),
        "{asked:?}"
    );

    // A third run has nothing to ask.
    fake.clear_seen();
    let report = fetch_candles(&c, &req, opts, &mut sink, &mut |_, _| {}).unwrap();
    assert_eq!((report.ranges.len(), report.fetched), (0, 0));
    assert!(fake.seen().is_empty());
}

#[test]
fn a_gap_is_reported_not_filled() {
    let mut bars = walk(300, T0, H);
    for i in 100..105 {
        bars.remove(&((T0 + i * H) * 1000));
    }
    let fake = FakeBybit::start(Market {
        bars: bars.clone(),
        ..Market::default()
    });
    let (c, _) = client(&fake);
    let mut sink = Memory::default();
    let req = request(T0, T0 + 300 * H);
    let report = fetch_candles(&c, &req, later(), &mut sink, &mut |_, _| {}).unwrap();
    let gap = Gap {
        first_missing: T0 + 100 * H,
        last_missing: T0 + 104 * H,
        bars: 5,
    };
    assert_eq!(report.gaps, [gap]);
    assert_eq!(sink.bars, secs(&bars), "nothing invented");
    // A re-run asks for the hole only, and reports it again.
    fake.clear_seen();
    let report = fetch_candles(&c, &req, later(), &mut sink, &mut |_, _| {}).unwrap();
    assert_eq!(report.ranges, [(T0 + 100 * H, T0 + 105 * H)]);
    assert_eq!(report.gaps, [gap]);
    assert_eq!(
        kline_requests(&fake),
        [(gap.first_missing * 1000, (T0 + 105 * H) * 1000 - 1)]
    );
}

#[test]
fn bad_answers_name_the_field_and_store_nothing() {
    let cases = [
        (
            r#"{"retCode":0,"retMsg":"OK","result":{"list":[["1704067200000","1","2"]]}}"#,
            "result.list[0]",
        ),
        (
            r#"{"retCode":0,"retMsg":"OK","result":{"list":[["1704067200000","1","2","0.5","1","-","1"]]}}"#,
            "result.list[0][5] (volume)",
        ),
        (
            r#"{"retCode":0,"retMsg":"OK","result":{"items":[]}}"#,
            "result.list",
        ),
        (r#"{"ret_code":0}"#, "envelope"),
        (
            r#"{"retCode":0,"retMsg":"OK","result":{"list":[["1704067201000","1","2","0.5","1","1","1"]]}}"#,
            "result.list[].startTime",
        ),
    ];
    for (body, field) in cases {
        let fake = FakeBybit::start(Market {
            body_override: Some(body.into()),
            ..Market::default()
        });
        let (c, _) = client(&fake);
        let mut sink = Memory::default();
        let e = fetch_candles(
            &c,
            &request(T0, T0 + 10 * H),
            later(),
            &mut sink,
            &mut |_, _| {},
        )
        .unwrap_err();
        match &e {
            Error::Shape { field: f, .. } => assert_eq!(f, field, "{e}"),
            other => panic!("{body}: {other}"),
        }
        assert!(e.to_string().contains(field), "{e}");
        assert_eq!(sink.stores, 0);
    }
}

#[test]
fn mark_prices_come_from_their_endpoint() {
    let mark = walk(20, T0, H);
    let fake = FakeBybit::start(Market {
        mark: mark.clone(),
        ..Market::default()
    });
    let (c, _) = client(&fake);
    let mut sink = Memory::default();
    let mut req = request(T0, T0 + 20 * H);
    req.kind = KlineKind::Mark;
    fetch_candles(&c, &req, later(), &mut sink, &mut |_, _| {}).unwrap();
    assert_eq!(sink.bars.len(), 20);
    assert!(
        sink.bars.values().all(|v| v[4] == 0.0),
        "mark bars carry no volume"
    );
    assert_eq!(fake.seen()[0].path, "/v5/market/mark-price-kline");
}

#[test]
fn funding_pages_and_resume() {
    let eight = 8 * H;
    let funding: BTreeMap<i64, f64> = (0..450)
        .map(|i| ((T0 + i * eight) * 1000, (i % 7) as f64 * 1e-5 - 2e-5))
        .collect();
    let fake = FakeBybit::start(Market {
        funding: funding.clone(),
        ..Market::default()
    });
    let (c, _) = client(&fake);
    let end = T0 + 450 * eight;
    let got = fetch_funding(&c, "linear", "BTCUSDT", T0, end, &[]).unwrap();
    assert_eq!(got.len(), 450);
    assert!(got.windows(2).all(|w| w[0].ts < w[1].ts));
    assert_eq!((got[0].ts, got[0].rate), (T0, -2e-5));
    assert_eq!(fake.seen().len(), 3, "200 + 200 + 50");
    // Resumed with the first 300 held: asks only after the last.
    fake.clear_seen();
    let held: Vec<i64> = got[..300].iter().map(|r| r.ts).collect();
    let rest = fetch_funding(&c, "linear", "BTCUSDT", T0, end, &held).unwrap();
    assert_eq!(rest.len(), 150);
    assert_eq!(rest[0].ts, held[299] + eight);
    assert!(fake
        .seen()
        .iter()
        .all(|s| s.num("startTime") > held[299] * 1000));
}

#[test]
fn instrument_maps_info_and_risk_tiers() {
    let fake = FakeBybit::start(Market::default());
    let (c, _) = client(&fake);
    let inst = fetch_instrument(&c, "linear", "BTCUSDT").unwrap();
    assert_eq!(
        (
            inst.tick_size,
            inst.qty_step,
            inst.min_qty,
            inst.max_leverage
        ),
        (0.1, 0.001, 0.001, 100.0)
    );
    assert_eq!(inst.risk_tiers.len(), 2);
    assert_eq!(
        (inst.risk_tiers[1].mmr, inst.risk_tiers[1].mm_deduction),
        (0.0056, 1200.0)
    );
    let paths: Vec<String> = fake.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(
        paths,
        ["/v5/market/instruments-info", "/v5/market/risk-limit"]
    );
}
