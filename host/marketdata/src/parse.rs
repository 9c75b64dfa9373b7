//! Bybit's answers, parsed borrowing from the body: the envelope
//! (`retCode`, `retMsg`, `result`), kline rows (arrays of strings, newest
//! first) and funding rows. No `serde_json::Value` on the hot path: a
//! year of 1-minute bars is 525,600 rows.
//!
//! Shapes, from Bybit's v5 docs: `{"retCode":0,"retMsg":"OK","result":
//! {"category":"linear","symbol":"BTCUSDT","list":[["1670608800000",
//! "17071","17073","17027","17055.5","268611","15.74"],...]},
//! "retExtInfo":{},"time":1672025956592}`; mark-price rows stop after the
//! close; funding rows are `{"symbol","fundingRate","fundingRateTimestamp"}`.

use crate::{Error, Result};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

/// The fields every answer carries.
#[derive(Deserialize)]
pub struct Envelope<'a> {
    #[serde(rename = "retCode")]
    pub ret_code: i64,
    #[serde(rename = "retMsg", borrow)]
    pub ret_msg: Cow<'a, str>,
    #[serde(borrow, default)]
    pub result: Option<&'a RawValue>,
}

/// Reads the envelope; a body that is not one is a shape error naming
/// what serde found missing.
pub fn envelope<'a>(endpoint: &str, body: &'a str) -> Result<Envelope<'a>> {
    serde_json::from_str(body).map_err(|e| Error::shape(endpoint, "envelope", e.to_string()))
}

/// `result`, which must be present when `retCode` is 0.
fn result<'a>(endpoint: &str, body: &'a str) -> Result<&'a str> {
    let env = envelope(endpoint, body)?;
    match env.result {
        Some(raw) => Ok(raw.get()),
        None => Err(Error::shape(endpoint, "result", "missing")),
    }
}

/// One kline row: up to seven strings, borrowed from the body.
struct Row<'a> {
    fields: [&'a str; 7],
    len: usize,
}

impl<'de: 'a, 'a> Deserialize<'de> for Row<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Row<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of at most 7 strings")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Row<'a>, A::Error> {
                let mut row = Row {
                    fields: [""; 7],
                    len: 0,
                };
                while let Some(s) = seq.next_element::<&'de str>()? {
                    if row.len == 7 {
                        return Err(de::Error::invalid_length(8, &self));
                    }
                    row.fields[row.len] = s;
                    row.len += 1;
                }
                Ok(row)
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct KlineResult<'a> {
    #[serde(borrow)]
    list: Vec<Row<'a>>,
}

/// One bar as Bybit gives it: open time in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub ts_ms: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    /// 0 for mark-price klines, which carry no volume.
    pub volume: f64,
}

const KLINE_FIELDS: [&str; 7] = [
    "startTime",
    "openPrice",
    "highPrice",
    "lowPrice",
    "closePrice",
    "volume",
    "turnover",
];

fn number(endpoint: &str, row: usize, col: usize, text: &str) -> Result<f64> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(Error::shape(
            endpoint,
            format!("result.list[{row}][{col}] ({})", KLINE_FIELDS[col]),
            format!("`{text}` is not a finite number"),
        )),
    }
}

/// Parses a kline or mark-price-kline answer into bars, in Bybit's order
/// (newest first). `with_volume` says whether rows must carry a volume
/// (trade klines: 7 fields; mark-price klines: 5).
pub fn klines(endpoint: &str, body: &str, with_volume: bool, out: &mut Vec<Bar>) -> Result<()> {
    let raw = result(endpoint, body)?;
    let parsed: KlineResult<'_> = serde_json::from_str(raw)
        .map_err(|e| Error::shape(endpoint, "result.list", e.to_string()))?;
    let want = if with_volume { 7 } else { 5 };
    out.reserve(parsed.list.len());
    for (i, row) in parsed.list.iter().enumerate() {
        if row.len < want {
            return Err(Error::shape(
                endpoint,
                format!("result.list[{i}]"),
                format!(
                    "{} fields, expected {want} ({})",
                    row.len,
                    KLINE_FIELDS[..want].join(", ")
                ),
            ));
        }
        let f = &row.fields;
        let ts_ms: i64 = f[0].parse().map_err(|_| {
            Error::shape(
                endpoint,
                format!("result.list[{i}][0] (startTime)"),
                format!("`{}` is not a timestamp in milliseconds", f[0]),
            )
        })?;
        out.push(Bar {
            ts_ms,
            open: number(endpoint, i, 1, f[1])?,
            high: number(endpoint, i, 2, f[2])?,
            low: number(endpoint, i, 3, f[3])?,
            close: number(endpoint, i, 4, f[4])?,
            volume: if with_volume {
                number(endpoint, i, 5, f[5])?
            } else {
                0.0
            },
        });
    }
    Ok(())
}

#[derive(Deserialize)]
struct FundingRow<'a> {
    #[serde(rename = "fundingRate", borrow)]
    rate: &'a str,
    #[serde(rename = "fundingRateTimestamp", borrow)]
    ts: &'a str,
}

#[derive(Deserialize)]
struct FundingResult<'a> {
    #[serde(borrow)]
    list: Vec<FundingRow<'a>>,
}

/// Parses a funding-history answer into `(ts_ms, rate)`, newest first.
pub fn funding(endpoint: &str, body: &str, out: &mut Vec<(i64, f64)>) -> Result<()> {
    let raw = result(endpoint, body)?;
    let parsed: FundingResult<'_> = serde_json::from_str(raw)
        .map_err(|e| Error::shape(endpoint, "result.list", e.to_string()))?;
    for (i, row) in parsed.list.iter().enumerate() {
        let ts: i64 = row.ts.parse().map_err(|_| {
            Error::shape(
                endpoint,
                format!("result.list[{i}].fundingRateTimestamp"),
                format!("`{}` is not a timestamp in milliseconds", row.ts),
            )
        })?;
        let rate = match row.rate.parse::<f64>() {
            Ok(v) if v.is_finite() => v,
            _ => {
                return Err(Error::shape(
                    endpoint,
                    format!("result.list[{i}].fundingRate"),
                    format!("`{}` is not a finite number", row.rate),
                ))
            }
        };
        out.push((ts, rate));
    }
    Ok(())
}

/// `result` as a `serde_json::Value`, for the small answers
/// (instruments, risk limits) where speed does not matter.
pub fn result_value(endpoint: &str, body: &str) -> Result<serde_json::Value> {
    serde_json::from_str(result(endpoint, body)?)
        .map_err(|e| Error::shape(endpoint, "result", e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EP: &str = "/v5/market/kline";

    #[test]
    fn docs_example_parses_newest_first() {
        let body = r#"{"retCode":0,"retMsg":"OK","result":{"symbol":"BTCUSD","category":"inverse","list":[["1670608800000","17071","17073","17027","17055.5","268611","15.74462667"],["1670605200000","17071.5","17071.5","17061","17071","4177","0.24469757"]]},"retExtInfo":{},"time":1672025956592}"#;
        let mut bars = Vec::new();
        klines(EP, body, true, &mut bars).unwrap();
        assert_eq!(bars.len(), 2);
        assert_eq!(bars[0].ts_ms, 1_670_608_800_000);
        assert_eq!((bars[0].close, bars[0].volume), (17_055.5, 268_611.0));
    }

    #[test]
    fn bad_shapes_name_the_field() {
        let cases = [
            (r#"{"retMsg":"OK","result":{}}"#, "envelope", "retCode"),
            (r#"{"retCode":0,"retMsg":"OK"}"#, "result", "missing"),
            (
                r#"{"retCode":0,"retMsg":"OK","result":{"lst":[]}}"#,
                "result.list",
                "list",
            ),
            (
                r#"{"retCode":0,"retMsg":"OK","result":{"list":[["1","2"]]}}"#,
                "result.list[0]",
                "2 fields",
            ),
            (
                r#"{"retCode":0,"retMsg":"OK","result":{"list":[["1","2","x","1","1","1","1"]]}}"#,
                "result.list[0][2] (highPrice)",
                "`x`",
            ),
            (
                r#"{"retCode":0,"retMsg":"OK","result":{"list":[[1,"2","3","1","1","1","1"]]}}"#,
                "result.list",
                "string",
            ),
        ];
        for (body, field, reason) in cases {
            let e = klines(EP, body, true, &mut Vec::new()).unwrap_err();
            match &e {
                Error::Shape {
                    field: f,
                    reason: r,
                    ..
                } => {
                    assert_eq!(f, field, "{e}");
                    assert!(r.contains(reason), "{e}");
                }
                other => panic!("{other}"),
            }
        }
        let e = funding(
            "/v5/market/funding/history",
            r#"{"retCode":0,"retMsg":"OK","result":{"list":[{"fundingRate":"abc","fundingRateTimestamp":"1"}]}}"#,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("result.list[0].fundingRate"), "{e}");
    }
}
