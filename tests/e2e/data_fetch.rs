//! `stratbox data fetch bybit` against a local server answering in
//! Bybit's shape (`stratbox_marketdata::fake`): into a CSV (with mark,
//! funding and instrument files beside it) and into a private Redis,
//! re-run to fetch nothing, and bad input naming the flag.

use crate::support::{path_str, scratch, stderr, stdout, stratbox};
use std::collections::BTreeMap;
use stratbox_engine::candles::{parse_csv, Candles};
use stratbox_marketdata::fake::{walk, FakeBybit, Fault, Market};
use stratbox_redis::LocalRedis;
use stratbox_store::{CandleCache, Store};

/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200;
const H: i64 = 3_600;
const BARS: i64 = 2_500;
/// `--end`: T0 + 2500 hours.
const END: &str = "2024-04-14T04:00:00Z";

fn market() -> Market {
    Market {
        bars: walk(BARS as usize, T0, H),
        mark: walk(BARS as usize, T0, H),
        funding: (0..BARS / 8)
            .map(|i| ((T0 + i * 8 * H) * 1000, 1e-4))
            .collect(),
        overlap: 2,
        ..Market::default()
    }
}

fn candles(bars: &BTreeMap<i64, [f64; 5]>, with_volume: bool) -> Candles {
    let mut c = Candles::new();
    for (t, v) in bars {
        c.push(
            t / 1000,
            v[0],
            v[1],
            v[2],
            v[3],
            if with_volume { v[4] } else { 0.0 },
        );
    }
    c
}

fn fetch_args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "data",
        "fetch",
        "bybit",
        "--symbol",
        "BTCUSDT",
        "--category",
        "linear",
        "--interval",
        "60",
        "--start",
        "2024-01-01",
        "--end",
        END,
        "--base-url",
        url,
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn fetch_into_csv_then_nothing_left_to_fetch() {
    let dir = scratch("data-fetch-csv");
    let m = market();
    let fake = FakeBybit::start(m.clone());
    let out = dir.join("btc.csv");
    let args = fetch_args(
        fake.url(),
        &[
            "--mark",
            "--funding",
            "--instrument",
            "--out",
            path_str(&out),
        ],
    );
    let run = stratbox(&dir, &args);
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    assert!(
        stdout(&run).contains("BTCUSDT 1h candles: 2500 fetched in 3 pages"),
        "{}",
        stdout(&run)
    );
    let got = parse_csv(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(got, candles(&m.bars, true));
    let mark = parse_csv(&std::fs::read_to_string(dir.join("btc.mark.csv")).unwrap()).unwrap();
    assert_eq!(mark, candles(&m.mark, false));
    let funding = std::fs::read_to_string(dir.join("btc.funding.csv")).unwrap();
    assert!(
        funding.starts_with(&format!("ts,rate\n{T0},0.0001\n")),
        "{funding}"
    );
    assert_eq!(funding.lines().count() as i64, 1 + BARS / 8);
    let inst: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("btc.instrument.json")).unwrap())
            .unwrap();
    assert_eq!(inst["tick_size"], 0.1);
    assert_eq!(inst["taker_fee"], 0.00055);
    assert_eq!(inst["risk_tiers"][1]["mm_deduction"], 1200.0);

    // Everything is held: no kline page is asked for again.
    fake.clear_seen();
    let run = stratbox(
        &dir,
        &fetch_args(fake.url(), &["--mark", "--out", path_str(&out)]),
    );
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stdout(&run).contains("all held already"),
        "{}",
        stdout(&run)
    );
    assert!(fake.seen().is_empty(), "{:?}", fake.seen());

    // A file of another timeframe is refused, naming --out.
    let mut args = fetch_args(fake.url(), &["--out", path_str(&out)]);
    args[8] = "D";
    let run = stratbox(&dir, &args);
    assert_eq!(run.status.code(), Some(2), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("--out") && stderr(&run).contains("holds 1h bars, not 1d"),
        "{}",
        stderr(&run)
    );
}

#[test]
fn fetch_into_redis_resumes_after_a_failure() {
    let dir = scratch("data-fetch-redis");
    let redis = LocalRedis::start(&dir.join("redis")).unwrap();
    let m = market();
    // Two pages answer, then the server goes bad: a killed fetch.
    let fake = FakeBybit::start(Market {
        fail_from: Some(2),
        ..m.clone()
    });
    let url = redis.url();
    let redis_args = ["--redis", "--redis-url", url.as_str(), "--prefix", "e2e"];
    let run = stratbox(&dir, &fetch_args(fake.url(), &redis_args));
    assert_eq!(run.status.code(), Some(1), "{}", stderr(&run));
    assert!(stderr(&run).contains("HTTP 500"), "{}", stderr(&run));

    fake.edit(|mk| mk.fail_from = None);
    fake.clear_seen();
    let mut extra = redis_args.to_vec();
    extra.extend(["--funding", "--instrument", "--mark"]);
    let run = stratbox(&dir, &fetch_args(fake.url(), &extra));
    assert!(run.status.success(), "{}{}", stdout(&run), stderr(&run));
    // The resumed run asked only for bars older than what the first stored.
    let first_asked_end = fake
        .seen()
        .iter()
        .find(|s| s.path == "/v5/market/kline")
        .map(|s| s.num("end"))
        .unwrap();
    assert!(
        first_asked_end < (T0 + BARS * H) * 1000 - 1,
        "{first_asked_end}"
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Store::connect(&url, "e2e").await.unwrap();
        let cache = CandleCache::new(64 << 20);
        let (got, _) = store
            .load_candles(&cache, "BTCUSDT", H, i64::MIN, i64::MAX, 0)
            .await
            .unwrap();
        assert_eq!(got, candles(&m.bars, true));
        let mark = store
            .load_mark(&cache, "BTCUSDT", H, i64::MIN, i64::MAX)
            .await
            .unwrap();
        assert_eq!(mark, candles(&m.mark, false));
        let funding = store
            .load_funding("BTCUSDT", i64::MIN, i64::MAX)
            .await
            .unwrap();
        assert_eq!(funding.len() as i64, BARS / 8);
        let inst = store.get_instrument("BTCUSDT").await.unwrap().unwrap();
        assert_eq!(
            (inst.qty_step, inst.max_leverage, inst.risk_tiers.len()),
            (0.001, 100.0, 2)
        );
    });
}

#[test]
fn bad_input_names_the_flag_and_api_errors_fail_the_run() {
    let dir = scratch("data-fetch-bad");
    let fake = FakeBybit::start(Market {
        faults: BTreeMap::from([(
            0,
            Fault::RetCode(10001, "params error: symbol invalid".into()),
        )]),
        ..market()
    });
    let out = dir.join("x.csv");
    let cases: [(&[&str], &str); 5] = [
        (&["--interval", "7"], "--interval"),
        (&["--start", "2024-02-30"], "--start"),
        (&["--category", "option"], "--category"),
        (&["--symbol", "btc usdt"], "--symbol"),
        (&["--base-url", "ftp://x"], "--base-url"),
    ];
    for (flags, named) in cases {
        let mut args = fetch_args(fake.url(), &["--out", path_str(&out)]);
        args.extend_from_slice(flags);
        let run = stratbox(&dir, &args);
        assert_eq!(run.status.code(), Some(2), "{flags:?}: {}", stderr(&run));
        assert!(stderr(&run).contains(named), "{flags:?}: {}", stderr(&run));
    }
    assert!(fake.seen().is_empty(), "bad input sends nothing");
    let run = stratbox(&dir, &fetch_args(fake.url(), &["--out", path_str(&out)]));
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run).contains("retCode 10001: params error: symbol invalid"),
        "{}",
        stderr(&run)
    );
    assert!(!out.exists(), "nothing written");
}
