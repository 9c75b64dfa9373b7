//! What an optimization ranks by: any numeric report metric, maximised or
//! minimised, and a minimum number of trades for a result to be ranked.

use serde::{Deserialize, Serialize};

use super::error::OptimizeError;
use crate::Report;

/// Every numeric metric of a report, in report order: the objective
/// choices and the metric columns of the table.
pub const METRICS: [&str; 27] = [
    "final_equity",
    "total_return_pct",
    "buy_and_hold_return_pct",
    "cagr_pct",
    "max_drawdown_pct",
    "max_drawdown_duration_bars",
    "max_drawdown_duration_secs",
    "sharpe",
    "sortino",
    "calmar",
    "num_trades",
    "win_rate_pct",
    "profit_factor",
    "avg_trade_pct",
    "best_trade_pct",
    "worst_trade_pct",
    "avg_trade_duration_secs",
    "exposure_pct",
    "fees_paid",
    "annual_volatility_pct",
    "avg_drawdown_pct",
    "avg_drawdown_duration_secs",
    "sqn",
    "expectancy",
    "kelly",
    "return_skewness",
    "return_kurtosis",
];

/// The metrics of one run, in [`METRICS`] order (`None` where the report
/// has none, e.g. no Sharpe for a flat equity curve).
#[derive(Debug, Clone, PartialEq)]
pub struct Summary(pub [Option<f64>; METRICS.len()]);

impl Summary {
    pub fn of(r: &Report) -> Summary {
        Summary([
            Some(r.final_equity),
            Some(r.total_return_pct),
            Some(r.buy_and_hold_return_pct),
            r.cagr_pct,
            Some(r.max_drawdown_pct),
            Some(r.max_drawdown_duration_bars as f64),
            Some(r.max_drawdown_duration_secs as f64),
            r.sharpe,
            r.sortino,
            r.calmar,
            Some(r.num_trades as f64),
            r.win_rate_pct,
            r.profit_factor,
            r.avg_trade_pct,
            r.best_trade_pct,
            r.worst_trade_pct,
            r.avg_trade_duration_secs,
            Some(r.exposure_pct),
            Some(r.fees_paid),
            r.annual_volatility_pct,
            Some(r.avg_drawdown_pct),
            Some(r.avg_drawdown_duration_secs),
            r.sqn,
            r.expectancy,
            r.kelly,
            r.return_skewness,
            r.return_kurtosis,
        ])
    }

    pub fn get(&self, metric: usize) -> Option<f64> {
        self.0.get(metric).copied().flatten()
    }

    pub fn num_trades(&self) -> u64 {
        self.get(10).map_or(0, |n| n as u64)
    }
}

/// Serialised as an object in [`METRICS`] order.
impl Serialize for Summary {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(METRICS.len()))?;
        for (name, value) in METRICS.iter().zip(&self.0) {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Summary {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, Option<f64>>::deserialize(d)?;
        let mut out = [None; METRICS.len()];
        for (slot, name) in out.iter_mut().zip(METRICS) {
            *slot = map.get(name).copied().flatten();
        }
        Ok(Summary(out))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Maximize,
    Minimize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Objective {
    pub metric: String,
    #[serde(skip)]
    index: usize,
    pub direction: Direction,
    /// Results with fewer closed trades are listed but not ranked.
    pub min_trades: u64,
}

impl Objective {
    /// Errors name `objective.metric` and list the valid names.
    pub fn new(metric: &str, direction: Direction, min_trades: u64) -> Result<Self, OptimizeError> {
        let index = METRICS.iter().position(|m| *m == metric).ok_or_else(|| {
            OptimizeError::new(
                "objective.metric",
                format!("unknown metric `{metric}`; one of: {}", METRICS.join(", ")),
            )
        })?;
        Ok(Self {
            metric: metric.to_string(),
            index,
            direction,
            min_trades,
        })
    }

    /// The value ranked, or `None` when the result is not ranked (too few
    /// trades, or the metric is undefined for it).
    pub fn score(&self, summary: &Summary) -> Option<f64> {
        if summary.num_trades() < self.min_trades {
            return None;
        }
        summary.get(self.index).filter(|v| !v.is_nan())
    }

    /// Orders two scores, best first.
    pub fn better(&self, a: f64, b: f64) -> std::cmp::Ordering {
        match self.direction {
            Direction::Maximize => b.total_cmp(&a),
            Direction::Minimize => a.total_cmp(&b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::candles::synth;
    use crate::{run_backtest, BacktestConfig, Params};

    fn report() -> Report {
        let candles = synth(2_000, 3, 3_600, 1_704_067_200, 100.0);
        let params = Params(vec![
            ("fast_period".into(), crate::ParamValue::Int(5)),
            ("slow_period".into(), crate::ParamValue::Int(20)),
            ("allow_short".into(), crate::ParamValue::Bool(false)),
        ]);
        let mut s = crate::reference::build("ema-crossover", &params).unwrap();
        run_backtest(&candles, s.as_mut(), &BacktestConfig::default()).unwrap()
    }

    #[test]
    fn metrics_are_exactly_the_numeric_fields_of_the_report_in_order() {
        let r = report();
        let json = serde_json::to_value(&r).unwrap();
        let numeric: Vec<&str> = json
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, v)| {
                (v.is_number() || v.is_null())
                    && !matches!(
                        k.as_str(),
                        "bars"
                            | "start_ts"
                            | "end_ts"
                            | "timeframe_secs"
                            | "initial_capital"
                            | "commission"
                            | "slippage_bps"
                            | "leverage"
                            | "fuel_used"
                            | "open_position"
                            | "strategy"
                    )
            })
            .map(|(k, _)| k.as_str())
            .collect();
        let mut sorted = METRICS.to_vec();
        sorted.sort_unstable();
        assert_eq!(numeric, sorted);
        // And in report order: positions in the serialised text increase.
        let text = serde_json::to_string(&r).unwrap();
        let at: Vec<usize> = METRICS
            .iter()
            .map(|m| text.find(&format!("\"{m}\":")).unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{at:?}");
        let summary = Summary::of(&r);
        let as_json = serde_json::to_value(&summary).unwrap();
        for name in METRICS {
            assert_eq!(as_json[name].as_f64(), json[name].as_f64(), "{name}");
        }
        let back: Summary = serde_json::from_value(as_json).unwrap();
        assert_eq!(back, summary);
    }

    #[test]
    fn unknown_metric_lists_the_valid_ones() {
        let err = Objective::new("sharp", Direction::Maximize, 0).unwrap_err();
        assert_eq!(err.field, "objective.metric");
        assert!(err.message.contains("unknown metric `sharp`"));
        assert!(err.message.contains("sharpe, sortino"));
    }

    #[test]
    fn min_trades_and_missing_values_are_not_scored() {
        let mut values = [None; METRICS.len()];
        values[7] = Some(1.5); // sharpe
        values[10] = Some(3.0); // num_trades
        let s = Summary(values);
        let sharpe = Objective::new("sharpe", Direction::Maximize, 3).unwrap();
        assert_eq!(sharpe.score(&s), Some(1.5));
        let strict = Objective::new("sharpe", Direction::Maximize, 4).unwrap();
        assert_eq!(strict.score(&s), None);
        let calmar = Objective::new("calmar", Direction::Maximize, 0).unwrap();
        assert_eq!(calmar.score(&s), None);
        use std::cmp::Ordering::*;
        assert_eq!(sharpe.better(2.0, 1.0), Less);
        let min = Objective::new("max_drawdown_pct", Direction::Minimize, 0).unwrap();
        assert_eq!(min.better(2.0, 1.0), Greater);
    }
}
