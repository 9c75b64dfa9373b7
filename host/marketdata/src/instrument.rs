//! An instrument as the perpetual account model needs it, built
//! from Bybit's `instruments-info` (tick size, qty step, min qty, max
//! leverage) and `risk-limit` (the maintenance-margin tiers) answers.
//!
//! Neither answer carries trading fees (they depend on the account's fee
//! tier), so `maker_fee` and `taker_fee` are the perpetual rules' defaults
//! (docs/conventions/market-data.md, "Instrument").

use crate::client::BybitClient;
use crate::parse::result_value;
use crate::{Error, Result};
use serde_json::Value;
pub use stratbox_engine::perp::{Instrument, RiskTier as Tier};

/// The maker fee when nothing is known (Bybit's base tier, 0.02%).
pub const DEFAULT_MAKER_FEE: f64 = 0.0002;
/// The taker fee when nothing is known (Bybit's base tier, 0.055%).
pub const DEFAULT_TAKER_FEE: f64 = 0.00055;
/// Risk-limit pages followed at most: linear answers 15 symbols a page,
/// and with `symbol` set there is one page; 50 pages is a loop guard.
const MAX_RISK_PAGES: usize = 50;

const INFO: &str = "/v5/market/instruments-info";
const RISK: &str = "/v5/market/risk-limit";

/// A positive number from a string (or number) field at `path`.
fn positive(endpoint: &str, v: &Value, path: &str) -> Result<f64> {
    let mut at = v;
    for part in path.split('.') {
        at = at
            .get(part)
            .ok_or_else(|| Error::shape(endpoint, path, "missing"))?;
    }
    let n = match at {
        Value::String(s) => s.parse::<f64>().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    match n {
        Some(x) if x.is_finite() && x > 0.0 => Ok(x),
        _ => Err(Error::shape(
            endpoint,
            path,
            format!("`{at}` is not a positive number"),
        )),
    }
}

/// A non-negative number; an empty string (Bybit's `mmDeduction: ""`) is 0.
fn non_negative(endpoint: &str, v: &Value, field: &str, path: &str) -> Result<f64> {
    let n = match v.get(field) {
        None | Some(Value::Null) => Some(0.0),
        Some(Value::String(s)) if s.is_empty() => Some(0.0),
        Some(Value::String(s)) => s.parse::<f64>().ok(),
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => None,
    };
    match n {
        Some(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(Error::shape(endpoint, path, "not a non-negative number")),
    }
}

/// Maps an `instruments-info` answer's entry for `symbol`.
pub fn from_info(symbol: &str, body: &str) -> Result<Instrument> {
    let result = result_value(INFO, body)?;
    let list = result
        .get("list")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::shape(INFO, "result.list", "missing or not an array"))?;
    let (i, item) = list
        .iter()
        .enumerate()
        .find(|(_, it)| it.get("symbol").and_then(Value::as_str) == Some(symbol))
        .ok_or_else(|| Error::shape(INFO, "result.list", format!("no entry for {symbol}")))?;
    let p = |path: &str| format!("result.list[{i}].{path}");
    let tick_size = positive(INFO, item, "priceFilter.tickSize").map_err(|_| {
        Error::shape(
            INFO,
            p("priceFilter.tickSize"),
            "missing or not a positive number",
        )
    })?;
    // Spot has no qtyStep: its step is the base coin's precision.
    let qty_step = positive(INFO, item, "lotSizeFilter.qtyStep")
        .or_else(|_| positive(INFO, item, "lotSizeFilter.basePrecision"))
        .map_err(|_| {
            Error::shape(
                INFO,
                p("lotSizeFilter.qtyStep"),
                "missing or not a positive number",
            )
        })?;
    let min_qty = positive(INFO, item, "lotSizeFilter.minOrderQty").map_err(|_| {
        Error::shape(
            INFO,
            p("lotSizeFilter.minOrderQty"),
            "missing or not a positive number",
        )
    })?;
    // Spot has no leverage filter: no leverage.
    let max_leverage = match item.get("leverageFilter") {
        None => 1.0,
        Some(_) => positive(INFO, item, "leverageFilter.maxLeverage").map_err(|_| {
            Error::shape(
                INFO,
                p("leverageFilter.maxLeverage"),
                "missing or not a positive number",
            )
        })?,
    };
    Ok(Instrument {
        symbol: Some(symbol.to_string()),
        tick_size,
        qty_step,
        min_qty,
        max_leverage,
        maker_fee: DEFAULT_MAKER_FEE,
        taker_fee: DEFAULT_TAKER_FEE,
        risk_tiers: Vec::new(),
    })
}

/// Appends the tiers of one `risk-limit` page for `symbol`; returns the
/// next page's cursor, if any.
pub fn tiers_from_risk(symbol: &str, body: &str, out: &mut Vec<Tier>) -> Result<Option<String>> {
    let result = result_value(RISK, body)?;
    let list = result
        .get("list")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::shape(RISK, "result.list", "missing or not an array"))?;
    for (i, item) in list.iter().enumerate() {
        if item.get("symbol").and_then(Value::as_str) != Some(symbol) {
            continue;
        }
        let p = |f: &str| format!("result.list[{i}].{f}");
        let up_to_value = positive(RISK, item, "riskLimitValue").map_err(|_| {
            Error::shape(
                RISK,
                p("riskLimitValue"),
                "missing or not a positive number",
            )
        })?;
        let mmr = positive(RISK, item, "maintenanceMargin").map_err(|_| {
            Error::shape(
                RISK,
                p("maintenanceMargin"),
                "missing or not a positive number",
            )
        })?;
        if mmr >= 1.0 {
            return Err(Error::shape(
                RISK,
                p("maintenanceMargin"),
                format!("{mmr} is not a rate below 1"),
            ));
        }
        let mm_deduction = non_negative(RISK, item, "mmDeduction", &p("mmDeduction"))?;
        out.push(Tier {
            up_to_value,
            mmr,
            mm_deduction,
        });
    }
    Ok(result
        .get("nextPageCursor")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty())
        .map(str::to_string))
}

/// Fetches and maps both answers. Spot has no risk limits: the default
/// tier stands in, so the instrument is whole (and never margined).
pub fn fetch_instrument(client: &BybitClient, category: &str, symbol: &str) -> Result<Instrument> {
    let q = |extra: Option<(&'static str, String)>| {
        let mut q = vec![
            ("category", category.to_string()),
            ("symbol", symbol.to_string()),
        ];
        q.extend(extra);
        q
    };
    let body = client.get(INFO, &q(None))?;
    let mut inst = from_info(symbol, &body)?;
    if category != "spot" {
        let mut cursor = None;
        for _ in 0..MAX_RISK_PAGES {
            let body = client.get(RISK, &q(cursor.take().map(|c| ("cursor", c))))?;
            cursor = tiers_from_risk(symbol, &body, &mut inst.risk_tiers)?;
            if cursor.is_none() {
                break;
            }
        }
        inst.risk_tiers
            .sort_by(|a, b| a.up_to_value.total_cmp(&b.up_to_value));
        inst.risk_tiers
            .dedup_by(|a, b| a.up_to_value == b.up_to_value);
        if inst.risk_tiers.is_empty() {
            return Err(Error::shape(
                RISK,
                "result.list",
                format!("no tier for {symbol}"),
            ));
        }
    } else {
        inst.risk_tiers = Instrument::bybit_default().risk_tiers;
    }
    Ok(inst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_info_and_tiers() {
        let info = r#"{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[{"symbol":"BTCUSDT","status":"Trading","leverageFilter":{"minLeverage":"1","maxLeverage":"100.00","leverageStep":"0.01"},"priceFilter":{"minPrice":"0.10","maxPrice":"199999.80","tickSize":"0.10"},"lotSizeFilter":{"maxOrderQty":"1190.000","minOrderQty":"0.001","qtyStep":"0.001"}}],"nextPageCursor":""},"time":1}"#;
        let inst = from_info("BTCUSDT", info).unwrap();
        assert_eq!(
            (
                inst.tick_size,
                inst.qty_step,
                inst.min_qty,
                inst.max_leverage
            ),
            (0.1, 0.001, 0.001, 100.0)
        );
        assert_eq!((inst.maker_fee, inst.taker_fee), (0.0002, 0.00055));
        let risk = r#"{"retCode":0,"retMsg":"OK","result":{"category":"linear","list":[{"id":1,"symbol":"BTCUSDT","riskLimitValue":"2000000","maintenanceMargin":"0.005","initialMargin":"0.01","isLowestRisk":1,"maxLeverage":"100.00","mmDeduction":""},{"id":2,"symbol":"BTCUSDT","riskLimitValue":"2600000","maintenanceMargin":0.0056,"initialMargin":"0.0112","isLowestRisk":0,"maxLeverage":"89.28","mmDeduction":"1200"}],"nextPageCursor":""}}"#;
        let mut tiers = Vec::new();
        assert_eq!(tiers_from_risk("BTCUSDT", risk, &mut tiers).unwrap(), None);
        assert_eq!(
            tiers,
            [
                Tier {
                    up_to_value: 2e6,
                    mmr: 0.005,
                    mm_deduction: 0.0
                },
                Tier {
                    up_to_value: 2.6e6,
                    mmr: 0.0056,
                    mm_deduction: 1200.0
                },
            ]
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let info = r#"{"retCode":0,"retMsg":"OK","result":{"list":[{"symbol":"X","priceFilter":{"tickSize":"0"},"lotSizeFilter":{"minOrderQty":"1","qtyStep":"1"}}]}}"#;
        let e = from_info("X", info).unwrap_err();
        assert!(
            e.to_string()
                .contains("result.list[0].priceFilter.tickSize"),
            "{e}"
        );
        let risk = r#"{"retCode":0,"retMsg":"OK","result":{"list":[{"symbol":"X","riskLimitValue":"1","maintenanceMargin":"0.5%"}]}}"#;
        let e = tiers_from_risk("X", risk, &mut Vec::new()).unwrap_err();
        assert!(
            e.to_string().contains("result.list[0].maintenanceMargin"),
            "{e}"
        );
    }
}
