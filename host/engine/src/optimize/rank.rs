//! The ranked results table: one row per combination, best first by the
//! objective (ties broken by combination index), then the unranked rows
//! (too few trades, no value, or a failed run) by index. Same rows in any
//! order give the same table, byte for byte.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

use super::objective::{Objective, Summary, METRICS};
use crate::stats::{self, DeflatedSharpe};
use crate::{ParamValue, Params};

/// The outcome of one combination.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// Its place in the generated order.
    pub index: usize,
    /// Every param, in schema order (a JSON object in that order).
    #[serde(with = "ordered")]
    pub params: Vec<(String, ParamValue)>,
    /// In-sample (or whole-range) metrics; `None` when the run failed.
    pub metrics: Option<Summary>,
    /// Out-of-sample metrics, with a hold-out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oos: Option<Summary>,
    /// Why the run failed (the strategy's own error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Bars of the in-sample run: the track record's length for the
    /// deflated Sharpe ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bars: Option<usize>,
}

impl Row {
    pub fn new(index: usize, params: &Params) -> Row {
        Row {
            index,
            params: params.0.clone(),
            metrics: None,
            oos: None,
            error: None,
            bars: None,
        }
    }
}

/// Name/value pairs as a JSON object that keeps their order both ways.
pub mod ordered {
    use crate::ParamValue;
    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;

    pub fn serialize<S: serde::Serializer>(
        pairs: &[(String, ParamValue)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(pairs.len()))?;
        for (name, value) in pairs {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<(String, ParamValue)>, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = Vec<(String, ParamValue)>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of params")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(pair) = map.next_entry()? {
                    out.push(pair);
                }
                Ok(out)
            }
        }
        d.deserialize_map(Pairs)
    }
}

/// A row in the table: its rank (1 is best; `None` when not ranked) and
/// the objective's value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    pub rank: Option<usize>,
    pub score: Option<f64>,
    #[serde(flatten)]
    pub row: Row,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    pub objective: Objective,
    pub rows: Vec<Ranked>,
}

/// Ranks `rows` (any order) by `objective`.
pub fn rank(objective: &Objective, mut rows: Vec<Row>) -> Table {
    rows.sort_by_key(|r| r.index);
    let mut ranked: Vec<Ranked> = rows
        .into_iter()
        .map(|row| Ranked {
            rank: None,
            score: row.metrics.as_ref().and_then(|m| objective.score(m)),
            row,
        })
        .collect();
    // Stable sort: equal scores keep index order.
    ranked.sort_by(|a, b| match (a.score, b.score) {
        (Some(x), Some(y)) => objective.better(x, y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    for (i, r) in ranked.iter_mut().enumerate() {
        if r.score.is_some() {
            r.rank = Some(i + 1);
        }
    }
    Table {
        objective: objective.clone(),
        rows: ranked,
    }
}

impl Table {
    pub fn top(&self, n: usize) -> &[Ranked] {
        &self.rows[..n.min(self.rows.len())]
    }

    /// The deflated Sharpe ratio ([`DeflatedSharpe`]) of the best-ranked
    /// row, whatever the objective: the trials are every row with an
    /// in-sample Sharpe ratio, their per-bar ratios (the annualised ones
    /// over `sqrt(periods_per_year)` of `timeframe_secs`) give the
    /// variance (sample, in index order), and the winner's bars, skewness
    /// and kurtosis its track record. `None` when the winner lacks any of
    /// them or fewer than 2 trials have a Sharpe ratio.
    pub fn deflated_sharpe(&self, timeframe_secs: i64) -> Option<f64> {
        let per_year = stats::periods_per_year(timeframe_secs as f64);
        if !stats::valid_periods_per_year(per_year) {
            return None;
        }
        let scale = per_year.sqrt();
        let at = |name: &str| METRICS.iter().position(|m| *m == name);
        let (sharpe, skew, kurt) = (
            at("sharpe")?,
            at("return_skewness")?,
            at("return_kurtosis")?,
        );
        let mut by_index: Vec<&Ranked> = self.rows.iter().collect();
        by_index.sort_by_key(|r| r.row.index);
        let trials: Vec<f64> = by_index
            .iter()
            .filter_map(|r| r.row.metrics.as_ref()?.get(sharpe))
            .map(|s| s / scale)
            .collect();
        let n = trials.len();
        if n < 2 {
            return None;
        }
        let mut total = 0.0;
        for &t in &trials {
            total += t;
        }
        let mean = total / n as f64;
        let mut squares = 0.0;
        for &t in &trials {
            squares += (t - mean) * (t - mean);
        }
        let variance = squares / (n - 1) as f64;
        let best = self.rows.first().filter(|r| r.rank == Some(1))?;
        let m = best.row.metrics.as_ref()?;
        DeflatedSharpe::compute(
            m.get(sharpe)? / scale,
            variance,
            n,
            best.row.bars?,
            m.get(skew)?,
            m.get(kurt)?,
        )
    }

    /// CSV: `rank,index,score`, the params in schema order, the metrics in
    /// report order, `oos_` metrics with a hold-out, then `error`. Floats
    /// print in Rust's shortest round-trip form; missing values are empty.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let param_names: Vec<&str> = self
            .rows
            .first()
            .map(|r| r.row.params.iter().map(|(n, _)| n.as_str()).collect())
            .unwrap_or_default();
        let holdout = self.rows.iter().any(|r| r.row.oos.is_some());
        let mut header: Vec<String> = vec!["rank".into(), "index".into(), "score".into()];
        header.extend(param_names.iter().map(|n| n.to_string()));
        header.extend(METRICS.iter().map(|m| m.to_string()));
        if holdout {
            header.extend(METRICS.iter().map(|m| format!("oos_{m}")));
        }
        header.push("error".into());
        out.push_str(&header.join(","));
        out.push('\n');
        let num = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let metrics = |m: &Option<Summary>, out: &mut String| {
            for i in 0..METRICS.len() {
                out.push(',');
                out.push_str(&num(m.as_ref().and_then(|m| m.get(i))));
            }
        };
        for r in &self.rows {
            let _ = write!(
                out,
                "{},{},{}",
                r.rank.map(|n| n.to_string()).unwrap_or_default(),
                r.row.index,
                num(r.score)
            );
            for name in &param_names {
                out.push(',');
                if let Some((_, v)) = r.row.params.iter().find(|(n, _)| n == name) {
                    out.push_str(&v.to_string());
                }
            }
            metrics(&r.row.metrics, &mut out);
            if holdout {
                metrics(&r.row.oos, &mut out);
            }
            out.push(',');
            out.push_str(&csv_field(r.row.error.as_deref().unwrap_or("")));
            out.push('\n');
        }
        out
    }
}

/// Quotes a field holding a comma, quote or line break (RFC 4180).
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optimize::objective::Direction;
    use crate::ParamValue::Int;

    fn row(index: usize, sharpe: Option<f64>, trades: f64) -> Row {
        let mut m = [None; METRICS.len()];
        m[7] = sharpe;
        m[10] = Some(trades);
        Row {
            index,
            params: vec![("fast_period".into(), Int(index as i64))],
            metrics: Some(Summary(m)),
            oos: None,
            error: None,
            bars: None,
        }
    }

    fn order(t: &Table) -> Vec<(Option<usize>, usize)> {
        t.rows.iter().map(|r| (r.rank, r.row.index)).collect()
    }

    #[test]
    fn best_first_ties_by_index_unranked_last() {
        let rows = vec![
            row(3, Some(1.0), 5.0),
            row(0, Some(2.0), 5.0),
            row(4, None, 5.0),
            row(1, Some(1.0), 5.0),
            row(2, Some(9.0), 1.0), // too few trades
            Row {
                error: Some("boom, \"x\"".into()),
                ..Row::new(5, &Params(vec![("fast_period".into(), Int(5))]))
            },
        ];
        let max = Objective::new("sharpe", Direction::Maximize, 2).unwrap();
        let t = rank(&max, rows.clone());
        assert_eq!(
            order(&t),
            [
                (Some(1), 0),
                (Some(2), 1),
                (Some(3), 3),
                (None, 2),
                (None, 4),
                (None, 5)
            ]
        );
        let min = Objective::new("sharpe", Direction::Minimize, 2).unwrap();
        let t2 = rank(&min, rows.iter().rev().cloned().collect());
        assert_eq!(
            order(&t2),
            [
                (Some(1), 1),
                (Some(2), 3),
                (Some(3), 0),
                (None, 2),
                (None, 4),
                (None, 5)
            ]
        );
        // Input order does not matter.
        assert_eq!(rank(&max, rows.iter().rev().cloned().collect()), t);
        assert_eq!(t.top(2).len(), 2);
        assert_eq!(t.top(99).len(), 6);
        // Rows go through JSON (the queue's chunk results) unchanged.
        let mut r = row(2, Some(1.0), 5.0);
        r.params
            .insert(0, ("z_first".into(), crate::ParamValue::Bool(true)));
        let json = serde_json::to_string(&r).unwrap();
        assert!(
            json.contains(r#""params":{"z_first":true,"fast_period":2}"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Row>(&json).unwrap(), r);
    }

    #[test]
    fn csv_has_a_stable_header_and_quotes_errors() {
        let obj = Objective::new("sharpe", Direction::Maximize, 0).unwrap();
        let t = rank(
            &obj,
            vec![
                row(0, Some(0.5), 3.0),
                Row {
                    error: Some("boom, \"x\"".into()),
                    ..Row::new(1, &Params(vec![("fast_period".into(), Int(7))]))
                },
            ],
        );
        let csv = t.to_csv();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            format!("rank,index,score,fast_period,{},error", METRICS.join(","))
        );
        // 27 metrics: sharpe (8th) 0.5 and num_trades (11th) 3, the rest
        // empty, then the empty error.
        assert_eq!(lines[1], "1,0,0.5,0,,,,,,,,0.5,,,3,,,,,,,,,,,,,,,,,");
        assert_eq!(
            lines[2],
            format!(",1,,7{}\"boom, \"\"x\"\"\"", ",".repeat(28))
        );
    }

    #[test]
    fn deflated_sharpe_of_the_winner_by_hand() {
        // Daily bars: 365 per year. Annual Sharpes sqrt(365) × [0.05, 0.15,
        // 0.10] are per-bar 0.05, 0.15, 0.10: mean 0.1, sample variance
        // (0.0025 + 0.0025 + 0) / 2 = 0.0025. The winner (0.15 per bar)
        // has 500 bars, skewness 0 and kurtosis 3. N = 3:
        // Φ⁻¹(2/3) = 0.43072729929545767, Φ⁻¹(1 - 1/(3e)) = 1.1619569289127327
        // SR₀ = 0.05 × (0.42278 × 0.43073 + 0.57722 × 1.16196) = 0.04264022480753474
        // z = (0.15 - 0.04264) × sqrt(499) / sqrt(1 + 0.5 × 0.0225) = 2.38485840465293
        // DSR = Φ(z) = 0.9914571519425068
        let obj = Objective::new("sharpe", Direction::Maximize, 0).unwrap();
        let at = |name: &str| METRICS.iter().position(|m| *m == name).unwrap();
        let rows = [0.05, 0.15, 0.10]
            .iter()
            .enumerate()
            .map(|(i, per_bar)| {
                let mut m = [None; METRICS.len()];
                m[at("sharpe")] = Some(per_bar * 365f64.sqrt());
                m[at("num_trades")] = Some(10.0);
                m[at("return_skewness")] = Some(0.0);
                m[at("return_kurtosis")] = Some(3.0);
                Row {
                    metrics: Some(Summary(m)),
                    bars: Some(500),
                    ..Row::new(i, &Params(vec![("fast_period".into(), Int(i as i64))]))
                }
            })
            .collect();
        let t = rank(&obj, rows);
        assert_eq!(t.rows[0].row.index, 1);
        let dsr = t.deflated_sharpe(86_400).unwrap();
        assert!((dsr - 0.991_457_151_942_506_8).abs() < 1e-9, "{dsr}");
        // One trial is no selection: undefined.
        let one = rank(&obj, vec![t.rows[0].row.clone()]);
        assert_eq!(one.deflated_sharpe(86_400), None);
    }
}
