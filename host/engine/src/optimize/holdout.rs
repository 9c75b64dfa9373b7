//! The out-of-sample hold-out: the loaded range split at a date or a
//! fraction into an in-sample part (ranked) and an out-of-sample part (run
//! for every combination, shown next to it, never ranked on).

use serde::{Deserialize, Serialize};

use super::error::OptimizeError;
use crate::candles::Candles;
use crate::portfolio::Universe;

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Split {
    /// Bars with `ts >= this` (unix seconds) are out of sample.
    Date(i64),
    /// The last fraction of the bars (0 < f < 1) is out of sample.
    Fraction(f64),
}

/// Where a range splits: bars `..at` are in sample, `at..` out of sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    pub split: Split,
}

const FIELD: &str = "holdout.split";

impl Holdout {
    /// Parses a CLI or API value: a fraction like `0.25`, or a date (RFC
    /// 3339 or unix seconds).
    pub fn parse(text: &str) -> Result<Holdout, OptimizeError> {
        let text = text.trim();
        if let Ok(f) = text.parse::<f64>() {
            if f > 0.0 && f < 1.0 {
                return Ok(Holdout {
                    split: Split::Fraction(f),
                });
            }
            if let Ok(ts) = text.parse::<i64>() {
                return Ok(Holdout {
                    split: Split::Date(ts),
                });
            }
            return Err(OptimizeError::new(
                FIELD,
                format!("a fraction must be above 0 and below 1, got {text}"),
            ));
        }
        let ts = crate::time::parse_rfc3339_secs(text).map_err(|_| {
            OptimizeError::new(
                FIELD,
                format!("`{text}` is neither a fraction (0 < f < 1) nor a date (RFC 3339)"),
            )
        })?;
        Ok(Holdout {
            split: Split::Date(ts),
        })
    }

    /// Checks the split against a date range before any candle is loaded
    /// (submission): a date must fall strictly inside it.
    pub fn check_range(&self, start_ts: i64, end_ts: i64) -> Result<(), OptimizeError> {
        match self.split {
            Split::Date(ts) if ts <= start_ts || ts > end_ts => Err(OptimizeError::new(
                FIELD,
                format!(
                    "{ts} is outside the date range ({start_ts} < split <= {end_ts} is needed)"
                ),
            )),
            Split::Fraction(f) if !(f > 0.0 && f < 1.0) => Err(OptimizeError::new(
                FIELD,
                format!("a fraction must be above 0 and below 1, got {f}"),
            )),
            _ => Ok(()),
        }
    }

    /// The first out-of-sample bar; both parts hold at least one bar.
    pub fn index(&self, candles: &Candles) -> Result<usize, OptimizeError> {
        self.index_in(&candles.ts)
    }

    /// [`Holdout::index`] over bar times `ts` (a series', or a portfolio's
    /// timeline).
    pub fn index_in(&self, ts: &[i64]) -> Result<usize, OptimizeError> {
        let n = ts.len();
        let ts_all = ts;
        let (Some(first), Some(last)) = (ts.first(), ts.last()) else {
            return Err(OptimizeError::new(FIELD, "there are no candles to split"));
        };
        let at = match self.split {
            Split::Date(ts) => {
                if ts <= *first || ts > *last {
                    return Err(OptimizeError::new(
                        FIELD,
                        format!(
                            "{ts} is outside the candles ({first} < split <= {last} is needed)"
                        ),
                    ));
                }
                ts_all.partition_point(|&t| t < ts)
            }
            Split::Fraction(f) => {
                self.check_range(*first, *last)?;
                n - ((n as f64 * f).round() as usize)
            }
        };
        if at == 0 || at >= n {
            return Err(OptimizeError::new(
                FIELD,
                format!("leaves one side empty ({at} of {n} bars in sample)"),
            ));
        }
        Ok(at)
    }

    /// (in sample, out of sample) of several symbols: the timeline is split
    /// as one series' bars would be, and each symbol's bars at that time.
    pub fn split_universe(
        &self,
        universe: &Universe,
    ) -> Result<(Universe, Universe), OptimizeError> {
        let at = self.index_in(&universe.ts)?;
        let (last_in, first_out) = (universe.ts[at - 1], universe.ts[at]);
        let end = universe.ts[universe.ts.len() - 1];
        let part = |from: i64, to: i64| {
            let series = universe
                .symbols
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        std::sync::Arc::new(s.candles.range(from, to)),
                    )
                })
                .collect();
            Universe::new(series).map_err(|e| OptimizeError::new(FIELD, e.to_string()))
        };
        Ok((part(universe.ts[0], last_in)?, part(first_out, end)?))
    }

    /// (in sample, out of sample).
    pub fn split(&self, candles: &Candles) -> Result<(Candles, Candles), OptimizeError> {
        let at = self.index(candles)?;
        let ts = &candles.ts;
        Ok((
            candles.range(ts[0], ts[at - 1]),
            candles.range(ts[at], ts[ts.len() - 1]),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candles() -> Candles {
        // Ten hourly bars from ts 0.
        crate::candles::synth(10, 1, 3_600, 0, 100.0)
    }

    #[test]
    fn a_date_splits_at_the_first_bar_at_or_after_it() {
        let c = candles();
        let h = Holdout::parse("1970-01-01T07:00:00Z").unwrap();
        assert_eq!(h.split, Split::Date(25_200));
        assert_eq!(h.index(&c).unwrap(), 7);
        // Between bars: the next bar starts the out-of-sample part.
        let h = Holdout::parse("25000").unwrap();
        assert_eq!(h.index(&c).unwrap(), 7);
        let (is, oos) = h.split(&c).unwrap();
        assert_eq!((is.len(), oos.len()), (7, 3));
        assert_eq!((is.ts[6], oos.ts[0]), (21_600, 25_200));
    }

    #[test]
    fn a_fraction_holds_out_the_last_part() {
        let c = candles();
        let h = Holdout::parse("0.3").unwrap();
        assert_eq!(h.index(&c).unwrap(), 7);
        assert_eq!(Holdout::parse("0.25").unwrap().index(&c).unwrap(), 7); // 2.5 rounds to 3
        assert_eq!(
            Holdout::parse("0.01").unwrap().index(&c).unwrap_err().field,
            FIELD
        );
    }

    #[test]
    fn outside_the_range_is_an_error_naming_the_field() {
        let c = candles();
        for text in [
            "0",
            "1970-01-01T00:00:00Z",
            "1970-01-02T00:00:00Z",
            "1.5",
            "soon",
        ] {
            let err = Holdout::parse(text).and_then(|h| h.index(&c).map(|_| ()));
            assert_eq!(err.unwrap_err().field, FIELD, "{text}");
        }
        let h = Holdout::parse("2024-06-01T00:00:00Z").unwrap();
        assert!(h.check_range(1_704_067_200, 1_735_603_200).is_ok());
        assert_eq!(
            h.check_range(1_704_067_200, 1_710_000_000)
                .unwrap_err()
                .field,
            FIELD
        );
    }

    #[test]
    fn several_symbols_split_on_their_timeline_each_at_the_same_time() {
        let a = crate::candles::synth(10, 1, 3_600, 0, 100.0);
        // B starts two hours late.
        let b = crate::candles::synth(8, 2, 3_600, 7_200, 50.0);
        let universe = Universe::new(vec![
            ("A".into(), std::sync::Arc::new(a)),
            ("B".into(), std::sync::Arc::new(b)),
        ])
        .unwrap();
        let (is, oos) = Holdout::parse("0.3")
            .unwrap()
            .split_universe(&universe)
            .unwrap();
        assert_eq!((is.steps(), oos.steps()), (7, 3));
        assert_eq!(
            (is.symbols[0].candles.len(), is.symbols[1].candles.len()),
            (7, 5)
        );
        assert_eq!(
            (oos.symbols[0].candles.len(), oos.symbols[1].candles.len()),
            (3, 3)
        );
        assert_eq!(oos.ts[0], 25_200);
        // A split that leaves a symbol no bar on one side names it.
        let err = Holdout::parse("1970-01-01T01:00:00Z")
            .unwrap()
            .split_universe(&universe)
            .unwrap_err();
        assert_eq!(err.field, FIELD);
        assert!(err.message.contains("B has no candles"), "{}", err.message);
    }
}
