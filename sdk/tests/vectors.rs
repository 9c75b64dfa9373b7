//! The golden vectors every guest SDK checks its indicators against, bit
//! for bit: `sdk/vectors/indicators.json`, made from these Rust indicators.
//! The test fails when the file is stale; `STRATBOX_UPDATE_VECTORS=1`
//! rewrites it.

use serde_json::{json, Value};
use stratbox_sdk::indicators::{Atr, BollingerBands, Ema, Macd, Rsi, Sma};

const BARS: usize = 300;

/// A random walk from a fixed LCG: trending stretches, reversals and flat
/// bars (RSI's zero-loss branch), the same on every machine.
fn series() -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut state: u64 = 0x5eed_cafe;
    let mut next = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut close, mut high, mut low) = (Vec::new(), Vec::new(), Vec::new());
    let mut price = 100.0_f64;
    for i in 0..BARS {
        let step = if (120..130).contains(&i) {
            0.0
        } else {
            (next() - 0.5) * 4.0
        };
        price = (price + step).max(1.0);
        close.push(price);
        high.push(price + next() * 2.0);
        low.push(price - next() * 2.0);
    }
    (close, high, low)
}

fn num(x: Option<f64>) -> Value {
    x.map_or(Value::Null, |v| json!(v))
}

fn vectors() -> Value {
    let (close, high, low) = series();
    let mut cases = Vec::new();
    for period in [1, 3, 14] {
        let mut ema = Ema::new(period);
        let output: Vec<Value> = close.iter().map(|&x| num(ema.update(x))).collect();
        cases.push(json!({"indicator": "ema", "args": [period], "output": output}));
        let mut sma = Sma::new(period);
        let output: Vec<Value> = close.iter().map(|&x| num(sma.update(x))).collect();
        cases.push(json!({"indicator": "sma", "args": [period], "output": output}));
    }
    for period in [2, 5, 14] {
        let mut rsi = Rsi::new(period);
        let output: Vec<Value> = close.iter().map(|&x| num(rsi.update(x))).collect();
        cases.push(json!({"indicator": "rsi", "args": [period], "output": output}));
        let mut atr = Atr::new(period);
        let output: Vec<Value> = (0..BARS)
            .map(|i| num(atr.update(high[i], low[i], close[i])))
            .collect();
        cases.push(json!({"indicator": "atr", "args": [period], "output": output}));
    }
    for (period, k) in [(5, 2.0), (20, 1.5)] {
        let mut bands = BollingerBands::new(period, k);
        let output: Vec<Value> = close
            .iter()
            .map(|&x| {
                bands.update(x).map_or(
                    Value::Null,
                    |b| json!({"upper": b.upper, "middle": b.middle, "lower": b.lower}),
                )
            })
            .collect();
        cases.push(json!({"indicator": "bollinger", "args": [period, k], "output": output}));
    }
    for (fast, slow, signal) in [(12, 26, 9), (3, 7, 2)] {
        let mut macd = Macd::new(fast, slow, signal);
        let output: Vec<Value> = close
            .iter()
            .map(|&x| {
                macd.update(x).map_or(
                    Value::Null,
                    |m| json!({"macd": m.macd, "signal": m.signal, "histogram": m.histogram}),
                )
            })
            .collect();
        cases.push(json!({"indicator": "macd", "args": [fast, slow, signal], "output": output}));
    }
    json!({"series": {"close": close, "high": high, "low": low}, "cases": cases})
}

#[test]
fn golden_vectors_are_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/indicators.json");
    let fresh = serde_json::to_string(&vectors()).expect("vectors serialize") + "\n";
    if std::env::var_os("STRATBOX_UPDATE_VECTORS").is_some() {
        std::fs::write(&path, &fresh).expect("write vectors");
        return;
    }
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        stored == fresh,
        "{} is stale: rerun with STRATBOX_UPDATE_VECTORS=1",
        path.display()
    );
}
