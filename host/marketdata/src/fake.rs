//! A local HTTP server that answers like Bybit's v5 public market
//! endpoints, for tests here and in the crates above (the `test-support`
//! feature): kline and mark-price pages newest first, funding history,
//! instruments-info and risk-limit, with throttling, errors and failures
//! injected on request. It records every request it answers.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// An injected answer for the request with this 0-based number.
#[derive(Debug, Clone)]
pub enum Fault {
    /// HTTP 200 with this `retCode` and `retMsg`.
    RetCode(i64, String),
    /// This HTTP status with a plain body.
    Status(u16),
}

/// The market the fake serves.
#[derive(Debug, Default, Clone)]
pub struct Market {
    /// Trade bars by open time (ms): open, high, low, close, volume.
    pub bars: BTreeMap<i64, [f64; 5]>,
    /// Mark bars by open time (ms).
    pub mark: BTreeMap<i64, [f64; 5]>,
    /// Funding by settlement time (ms).
    pub funding: BTreeMap<i64, f64>,
    /// Each kline page repeats this many rows newer than `end` (Bybit's
    /// pages can overlap), which the client must drop as duplicates.
    pub overlap: usize,
    /// Answers counted from 0: a fault replaces that answer.
    pub faults: BTreeMap<usize, Fault>,
    /// From this request number on, every answer is HTTP 500 (a server
    /// gone bad midway).
    pub fail_from: Option<usize>,
    /// Replaces every successful body (a shape test).
    pub body_override: Option<String>,
}

/// One recorded request: path and query pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub path: String,
    pub query: BTreeMap<String, String>,
}

impl Seen {
    /// A query parameter as a number (0 when absent).
    pub fn num(&self, key: &str) -> i64 {
        self.query
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

struct State {
    market: Market,
    seen: Vec<Seen>,
}

/// The running server; stops accepting when dropped.
pub struct FakeBybit {
    url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl FakeBybit {
    pub fn start(market: Market) -> FakeBybit {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let state = Arc::new(Mutex::new(State {
            market,
            seen: Vec::new(),
        }));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                thread::spawn(move || serve(conn, &st));
            }
        });
        FakeBybit { url, state, stop }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Requests answered so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.lock().seen.clone()
    }

    /// Changes the market (faults, data) between fetches.
    pub fn edit(&self, f: impl FnOnce(&mut Market)) {
        f(&mut self.lock().market);
    }

    /// Forgets the recorded requests and resets the request numbering.
    pub fn clear_seen(&self) {
        self.lock().seen.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeBybit {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(
            &self.url["http://".len()..]
                .parse()
                .expect("our own address"),
            Duration::from_millis(200),
        );
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut writer = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let (status, body) = answer(&target, state);
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(body.as_bytes()).is_err()
        {
            return;
        }
    }
}

fn answer(target: &str, state: &Mutex<State>) -> (u16, String) {
    let (path, qs) = target.split_once('?').unwrap_or((target, ""));
    let query: BTreeMap<String, String> = qs
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let n = st.seen.len();
    let seen = Seen {
        path: path.to_string(),
        query,
    };
    st.seen.push(seen.clone());
    let m = &st.market;
    if m.fail_from.is_some_and(|f| n >= f) {
        return (500, "upstream gone".into());
    }
    match m.faults.get(&n) {
        Some(Fault::Status(s)) => return (*s, "<html>403 Forbidden</html>".into()),
        Some(Fault::RetCode(code, msg)) => {
            return (
                200,
                format!(
                    r#"{{"retCode":{code},"retMsg":"{msg}","result":{{}},"retExtInfo":{{}},"time":1}}"#
                ),
            )
        }
        None => {}
    }
    if let Some(b) = &m.body_override {
        return (200, b.clone());
    }
    let result = match path {
        "/v5/market/kline" => klines(&seen, &m.bars, m.overlap, true),
        "/v5/market/mark-price-kline" => klines(&seen, &m.mark, m.overlap, false),
        "/v5/market/funding/history" => funding(&seen, &m.funding),
        "/v5/market/instruments-info" => instruments(&seen),
        "/v5/market/risk-limit" => risk(&seen),
        _ => return (404, "not found".into()),
    };
    (200, ok(&result))
}

/// Bybit's envelope around a `result` object.
pub fn ok(result: &str) -> String {
    format!(
        r#"{{"retCode":0,"retMsg":"OK","result":{result},"retExtInfo":{{}},"time":1672025956592}}"#
    )
}

/// A kline `result` for `rows` (open ms, o, h, l, c, v), given newest first.
pub fn kline_result<'a>(
    category: &str,
    symbol: &str,
    rows: impl Iterator<Item = (i64, &'a [f64; 5])>,
    with_volume: bool,
) -> String {
    let mut s = format!(r#"{{"symbol":"{symbol}","category":"{category}","list":["#);
    for (i, (t, v)) in rows.enumerate() {
        if i > 0 {
            s.push(',');
        }
        if with_volume {
            s.push_str(&format!(
                r#"["{t}","{}","{}","{}","{}","{}","{}"]"#,
                v[0],
                v[1],
                v[2],
                v[3],
                v[4],
                v[4] * v[3]
            ));
        } else {
            s.push_str(&format!(
                r#"["{t}","{}","{}","{}","{}"]"#,
                v[0], v[1], v[2], v[3]
            ));
        }
    }
    s.push_str("]}");
    s
}

fn klines(q: &Seen, bars: &BTreeMap<i64, [f64; 5]>, overlap: usize, vol: bool) -> String {
    let start = q.num("start");
    let end = q
        .query
        .get("end")
        .and_then(|v| v.parse().ok())
        .unwrap_or(i64::MAX);
    let limit = q.num("limit").clamp(1, 1000) as usize;
    let extra = bars.range(end.saturating_add(1)..).take(overlap);
    let mut rows: Vec<(i64, &[f64; 5])> = extra.map(|(t, v)| (*t, v)).collect();
    rows.extend(
        bars.range(start..=end)
            .rev()
            .take(limit)
            .map(|(t, v)| (*t, v)),
    );
    rows.sort_by_key(|r| std::cmp::Reverse(r.0));
    let cat = q.query.get("category").map_or("linear", String::as_str);
    let sym = q.query.get("symbol").map_or("", String::as_str);
    kline_result(cat, sym, rows.into_iter(), vol)
}

fn funding(q: &Seen, rates: &BTreeMap<i64, f64>) -> String {
    let start = q.num("startTime");
    let end = q
        .query
        .get("endTime")
        .and_then(|v| v.parse().ok())
        .unwrap_or(i64::MAX);
    let limit = q.num("limit").clamp(1, 200) as usize;
    let sym = q.query.get("symbol").cloned().unwrap_or_default();
    let rows: Vec<String> = rates
        .range(start..=end)
        .rev()
        .take(limit)
        .map(|(t, r)| {
            format!(r#"{{"symbol":"{sym}","fundingRate":"{r}","fundingRateTimestamp":"{t}"}}"#)
        })
        .collect();
    format!(r#"{{"category":"linear","list":[{}]}}"#, rows.join(","))
}

fn instruments(q: &Seen) -> String {
    let sym = q.query.get("symbol").cloned().unwrap_or_default();
    format!(
        r#"{{"category":"linear","list":[{{"symbol":"{sym}","contractType":"LinearPerpetual","status":"Trading","baseCoin":"BTC","quoteCoin":"USDT","priceScale":"2","leverageFilter":{{"minLeverage":"1","maxLeverage":"100.00","leverageStep":"0.01"}},"priceFilter":{{"minPrice":"0.10","maxPrice":"1999999.80","tickSize":"0.10"}},"lotSizeFilter":{{"maxOrderQty":"1190.000","minOrderQty":"0.001","qtyStep":"0.001","maxMktOrderQty":"119.000","minNotionalValue":"5"}},"fundingInterval":480,"settleCoin":"USDT"}}],"nextPageCursor":""}}"#
    )
}

fn risk(q: &Seen) -> String {
    let sym = q.query.get("symbol").cloned().unwrap_or_default();
    format!(
        r#"{{"category":"linear","list":[{{"id":1,"symbol":"{sym}","riskLimitValue":"2000000","maintenanceMargin":"0.005","initialMargin":"0.01","isLowestRisk":1,"maxLeverage":"100.00","mmDeduction":""}},{{"id":2,"symbol":"{sym}","riskLimitValue":"2600000","maintenanceMargin":"0.0056","initialMargin":"0.0112","isLowestRisk":0,"maxLeverage":"89.28","mmDeduction":"1200"}}],"nextPageCursor":""}}"#
    )
}

/// `n` bars of `secs` seconds from `start` (unix seconds), a seeded walk,
/// keyed by open time in milliseconds.
pub fn walk(n: usize, start: i64, secs: i64) -> BTreeMap<i64, [f64; 5]> {
    let mut out = BTreeMap::new();
    let mut price = 100.0f64;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let step = ((x % 2001) as f64 - 1000.0) / 10_000.0;
        let open = price;
        let close = (price + step).max(1.0);
        let high = open.max(close) + 0.25;
        let low = open.min(close) - 0.25;
        out.insert(
            (start + i as i64 * secs) * 1000,
            [open, high, low, close, (x % 1000) as f64],
        );
        price = close;
    }
    out
}
