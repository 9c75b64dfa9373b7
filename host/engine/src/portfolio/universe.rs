//! The symbols of a portfolio run on one timeline (docs/conventions/engine.md,
//! "Several symbols"): the union of their bar times, each symbol's columns
//! aligned to it with NaN where it has no bar. Nothing is filled forward
//! for the strategy; only the equity marks carry a symbol's last close.

use std::sync::Arc;

use crate::backtest::EngineError;
use crate::candles::Candles;

/// The most symbols in one run: far beyond any portfolio a strategy
/// rebalances by hand, and a bound on the columns crossing per call.
pub const MAX_SYMBOLS: usize = 100;

/// One symbol's bars, laid on the timeline.
#[derive(Debug)]
pub struct SymbolSeries {
    pub name: String,
    /// The symbol's own bars, as imported.
    pub candles: Arc<Candles>,
    /// Per step: open, high, low, close and volume of its bar there, NaN
    /// where it has none.
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
    /// Per step: its last close at or before the step (NaN before its
    /// first bar). For marking equity only.
    pub(crate) last_close: Vec<f64>,
    /// Per bar: the step it falls on.
    pub(crate) step_of_bar: Vec<u32>,
}

impl SymbolSeries {
    /// The symbol's bar at `step`, if it has one.
    pub fn bar_at(&self, step: usize) -> Option<usize> {
        let k = self.step_of_bar.partition_point(|&s| (s as usize) < step);
        (self.step_of_bar.get(k) == Some(&(step as u32))).then_some(k)
    }
}

/// Several symbols of one timeframe on one timeline.
#[derive(Debug)]
pub struct Universe {
    /// The union of every symbol's bar times, ascending.
    pub ts: Vec<i64>,
    pub symbols: Vec<SymbolSeries>,
    /// The bar length every symbol shares (None: no symbol has two bars).
    pub timeframe_secs: Option<i64>,
}

impl Universe {
    /// Lays `series` (name, candles; each already validated as candles)
    /// on one timeline. Errors name the symbol: an empty series, a name
    /// given twice, or a timeframe that differs from the first symbol's.
    pub fn new(series: Vec<(String, Arc<Candles>)>) -> Result<Self, EngineError> {
        let bad = |message: String| EngineError::InvalidConfig {
            field: "symbols",
            message,
        };
        if series.is_empty() {
            return Err(bad("name at least one symbol".into()));
        }
        if series.len() > MAX_SYMBOLS {
            return Err(bad(format!(
                "at most {MAX_SYMBOLS} symbols in one backtest, got {}",
                series.len()
            )));
        }
        let mut timeframe: Option<(i64, String)> = None;
        for (k, (name, candles)) in series.iter().enumerate() {
            if series[..k].iter().any(|(other, _)| other == name) {
                return Err(bad(format!("{name} is named twice")));
            }
            if candles.is_empty() {
                return Err(bad(format!("{name} has no candles")));
            }
            if let Some(tf) = candles.timeframe_secs() {
                match &timeframe {
                    Some((first, first_name)) if *first != tf => {
                        return Err(bad(format!(
                            "{name} has {tf}-second bars, {first_name} has {first}-second bars: \
                             every symbol must share one timeframe"
                        )))
                    }
                    None => timeframe = Some((tf, name.clone())),
                    _ => {}
                }
            }
        }
        let mut ts: Vec<i64> = series
            .iter()
            .flat_map(|(_, c)| c.ts.iter().copied())
            .collect();
        ts.sort_unstable();
        ts.dedup();
        let steps = ts.len();
        let symbols = series
            .into_iter()
            .map(|(name, candles)| {
                let mut step_of_bar = Vec::with_capacity(candles.len());
                let mut open = vec![f64::NAN; steps];
                let mut high = vec![f64::NAN; steps];
                let mut low = vec![f64::NAN; steps];
                let mut close = vec![f64::NAN; steps];
                let mut volume = vec![f64::NAN; steps];
                let mut step = 0;
                for (j, &t) in candles.ts.iter().enumerate() {
                    while ts[step] < t {
                        step += 1;
                    }
                    step_of_bar.push(step as u32);
                    open[step] = candles.open[j];
                    high[step] = candles.high[j];
                    low[step] = candles.low[j];
                    close[step] = candles.close[j];
                    volume[step] = candles.volume[j];
                }
                let mut last_close = Vec::with_capacity(steps);
                let mut last = f64::NAN;
                for &c in &close {
                    if !c.is_nan() {
                        last = c;
                    }
                    last_close.push(last);
                }
                SymbolSeries {
                    name,
                    candles,
                    open,
                    high,
                    low,
                    close,
                    volume,
                    last_close,
                    step_of_bar,
                }
            })
            .collect();
        Ok(Self {
            ts,
            symbols,
            timeframe_secs: timeframe.map(|(tf, _)| tf),
        })
    }

    /// Steps on the timeline.
    pub fn steps(&self) -> usize {
        self.ts.len()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.symbols.iter().map(|s| s.name.as_str())
    }
}
