//! Market data: OHLCV candles stored column-wise.
//!
//! * [`Candles`] — the columnar container with validation, range slicing and
//!   timeframe detection.
//! * [`csv`] — strict CSV reader/writer ([`parse_csv`], [`parse_csv_on_timeframe`],
//!   [`write_csv`]).
//! * [`synth`](mod@synth) — deterministic, seeded synthetic market data ([`synth()`](fn@synth)).
//!
//! Timestamps are always unix seconds (UTC) and mark the *open* of a bar.

pub mod csv;
pub mod synth;

pub use self::csv::{parse_csv, parse_csv_on_timeframe, write_csv, CsvError, CsvErrorKind};
pub use self::synth::synth;

use serde::{Deserialize, Serialize};

/// OHLCV bars stored as parallel columns.
///
/// All columns are expected to have the same length; [`Candles::len`] is the
/// length of `ts`, and [`Candles::validate`] reports mismatched columns.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Candles {
    /// Bar open time, unix seconds (UTC).
    pub ts: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
}

/// A violated candle invariant (see [`Candles::validate`]) or a bad timeframe
/// string (see [`parse_timeframe`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CandleError {
    /// A column's length differs from the length of `ts`.
    #[error("column {column} has {len} values but ts has {expected}; all columns must have the same length")]
    LengthMismatch {
        column: &'static str,
        len: usize,
        expected: usize,
    },
    /// `ts[index]` is not strictly greater than `ts[index - 1]`.
    #[error("bar {index}: ts {ts} is not after the previous bar's ts {prev}; timestamps must be strictly increasing")]
    NotIncreasing { index: usize, ts: i64, prev: i64 },
    /// A price or volume is NaN or infinite.
    #[error("bar {index}: {field} is {value}; values must be finite")]
    NonFinite {
        index: usize,
        field: &'static str,
        value: f64,
    },
    /// `high` is below `open` or `close` (`field` names the larger of the two).
    #[error("bar {index}: high {high} is below {field} {value}; high must be >= open and close")]
    HighBelowBody {
        index: usize,
        high: f64,
        field: &'static str,
        value: f64,
    },
    /// `low` is above `open` or `close` (`field` names the smaller of the two).
    #[error("bar {index}: low {low} is above {field} {value}; low must be <= open and close")]
    LowAboveBody {
        index: usize,
        low: f64,
        field: &'static str,
        value: f64,
    },
    /// `volume` is negative.
    #[error("bar {index}: volume {volume} is negative")]
    NegativeVolume { index: usize, volume: f64 },
    /// A timeframe string such as `"5m"` could not be parsed.
    #[error("invalid timeframe `{input}`: {reason}")]
    InvalidTimeframe { input: String, reason: String },
}

impl CandleError {
    /// The index of the offending bar, when the error is about one bar.
    pub fn index(&self) -> Option<usize> {
        match self {
            CandleError::NotIncreasing { index, .. }
            | CandleError::NonFinite { index, .. }
            | CandleError::HighBelowBody { index, .. }
            | CandleError::LowAboveBody { index, .. }
            | CandleError::NegativeVolume { index, .. } => Some(*index),
            CandleError::LengthMismatch { .. } | CandleError::InvalidTimeframe { .. } => None,
        }
    }
}

/// Gaps sampled by [`Candles::timeframe_secs`].
pub const TIMEFRAME_SAMPLE: usize = 10_000;

impl Candles {
    /// An empty set of candles.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty set of candles with room for `n` bars in every column.
    pub fn with_capacity(n: usize) -> Self {
        Candles {
            ts: Vec::with_capacity(n),
            open: Vec::with_capacity(n),
            high: Vec::with_capacity(n),
            low: Vec::with_capacity(n),
            close: Vec::with_capacity(n),
            volume: Vec::with_capacity(n),
        }
    }

    /// Number of bars (the length of the `ts` column).
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// `true` when there are no bars.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Appends one bar. No validation is done here; see [`Candles::validate`].
    pub fn push(&mut self, ts: i64, open: f64, high: f64, low: f64, close: f64, volume: f64) {
        self.ts.push(ts);
        self.open.push(open);
        self.high.push(high);
        self.low.push(low);
        self.close.push(close);
        self.volume.push(volume);
    }

    /// The bar duration in seconds: the most common positive difference
    /// between consecutive timestamps (gaps and a few odd bars do not change
    /// the answer). Ties are broken in favour of the smaller difference.
    ///
    /// Only the first [`TIMEFRAME_SAMPLE`] gaps are looked at: enough to
    /// outvote gaps, cheap on a 10M-bar series.
    ///
    /// `None` when there are fewer than 2 bars or no positive difference.
    pub fn timeframe_secs(&self) -> Option<i64> {
        if self.ts.len() < 2 {
            return None;
        }
        let sample = &self.ts[..self.ts.len().min(TIMEFRAME_SAMPLE + 1)];
        let mut diffs: Vec<i64> = sample
            .windows(2)
            .filter_map(|w| w[1].checked_sub(w[0]))
            .filter(|d| *d > 0)
            .collect();
        diffs.sort_unstable();
        let mut best: Option<(i64, usize)> = None;
        let mut i = 0;
        while i < diffs.len() {
            let d = diffs[i];
            let mut j = i;
            while j < diffs.len() && diffs[j] == d {
                j += 1;
            }
            let count = j - i;
            // Ascending order + strict `>` keeps the smaller difference on ties.
            if best.is_none_or(|(_, c)| count > c) {
                best = Some((d, count));
            }
            i = j;
        }
        best.map(|(d, _)| d)
    }

    /// The bars with `start_ts <= ts <= end_ts` (both ends inclusive), in
    /// their original order. Empty when `start_ts > end_ts`.
    ///
    /// Works on any column order (a linear scan, not a binary search), so it
    /// is correct even for candles that have not been validated.
    pub fn range(&self, start_ts: i64, end_ts: i64) -> Candles {
        let mut out = Candles::new();
        if start_ts > end_ts {
            return out;
        }
        let n = self.len();
        for (i, &ts) in self.ts.iter().enumerate() {
            if ts < start_ts || ts > end_ts {
                continue;
            }
            // `get` keeps this panic-free on mismatched (unvalidated) columns.
            let (Some(&o), Some(&h), Some(&l), Some(&c), Some(&v)) = (
                self.open.get(i),
                self.high.get(i),
                self.low.get(i),
                self.close.get(i),
                self.volume.get(i),
            ) else {
                break;
            };
            if out.is_empty() {
                // Reserve once for the (usual) contiguous case.
                out = Candles::with_capacity(n - i);
            }
            out.push(ts, o, h, l, c, v);
        }
        out.shrink_to_fit();
        out
    }

    fn shrink_to_fit(&mut self) {
        self.ts.shrink_to_fit();
        self.open.shrink_to_fit();
        self.high.shrink_to_fit();
        self.low.shrink_to_fit();
        self.close.shrink_to_fit();
        self.volume.shrink_to_fit();
    }

    /// Checks the candle invariants, returning the first violation:
    ///
    /// * all columns have the same length;
    /// * `ts` is strictly increasing;
    /// * open, high, low, close and volume are finite;
    /// * `high >= max(open, close)` and `low <= min(open, close)`
    ///   (hence also `high >= low`);
    /// * `volume >= 0`.
    ///
    /// Each per-bar error names the 0-based bar index.
    pub fn validate(&self) -> Result<(), CandleError> {
        let expected = self.ts.len();
        for (column, len) in [
            ("open", self.open.len()),
            ("high", self.high.len()),
            ("low", self.low.len()),
            ("close", self.close.len()),
            ("volume", self.volume.len()),
        ] {
            if len != expected {
                return Err(CandleError::LengthMismatch {
                    column,
                    len,
                    expected,
                });
            }
        }
        for index in 0..expected {
            let ts = self.ts[index];
            if index > 0 {
                let prev = self.ts[index - 1];
                if ts <= prev {
                    return Err(CandleError::NotIncreasing { index, ts, prev });
                }
            }
            let (open, high, low, close, volume) = (
                self.open[index],
                self.high[index],
                self.low[index],
                self.close[index],
                self.volume[index],
            );
            for (field, value) in [
                ("open", open),
                ("high", high),
                ("low", low),
                ("close", close),
                ("volume", volume),
            ] {
                if !value.is_finite() {
                    return Err(CandleError::NonFinite {
                        index,
                        field,
                        value,
                    });
                }
            }
            let (top_field, top) = if close > open {
                ("close", close)
            } else {
                ("open", open)
            };
            if high < top {
                return Err(CandleError::HighBelowBody {
                    index,
                    high,
                    field: top_field,
                    value: top,
                });
            }
            let (bottom_field, bottom) = if close < open {
                ("close", close)
            } else {
                ("open", open)
            };
            if low > bottom {
                return Err(CandleError::LowAboveBody {
                    index,
                    low,
                    field: bottom_field,
                    value: bottom,
                });
            }
            if volume < 0.0 {
                return Err(CandleError::NegativeVolume { index, volume });
            }
        }
        Ok(())
    }
}

const TIMEFRAME_UNITS: [(char, i64); 5] = [
    ('w', 7 * 86_400),
    ('d', 86_400),
    ('h', 3_600),
    ('m', 60),
    ('s', 1),
];

/// Parses a timeframe such as `"1m"`, `"15m"`, `"4h"`, `"1d"`, `"1w"` or
/// `"30s"` into seconds.
///
/// Format: a positive decimal integer followed by one lowercase unit letter,
/// `s` (seconds), `m` (minutes), `h` (hours), `d` (days) or `w` (weeks).
/// Surrounding whitespace is ignored. Uppercase `M` is rejected because it
/// commonly means *months*.
pub fn parse_timeframe(s: &str) -> Result<i64, CandleError> {
    let err = |reason: &str| CandleError::InvalidTimeframe {
        input: s.to_string(),
        reason: reason.to_string(),
    };
    let t = s.trim();
    let Some(unit) = t.chars().next_back() else {
        return Err(err(
            "empty; expected a number followed by a unit s, m, h, d or w (e.g. 1m, 4h, 1d)",
        ));
    };
    let number = &t[..t.len() - unit.len_utf8()];
    let Some(&(_, unit_secs)) = TIMEFRAME_UNITS.iter().find(|(u, _)| *u == unit) else {
        let reason = if unit.is_ascii_digit() {
            "missing unit; expected a number followed by s, m, h, d or w (e.g. 1m, 4h, 1d)"
                .to_string()
        } else if unit == 'M' {
            "unit `M` is ambiguous (minutes or months); use lowercase `m` for minutes".to_string()
        } else {
            format!("unknown unit `{unit}`; expected one of s, m, h, d, w (e.g. 1m, 4h, 1d)")
        };
        return Err(err(&reason));
    };
    if number.is_empty() {
        return Err(err("missing number before the unit (e.g. 1m, 4h, 1d)"));
    }
    if !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(
            "expected a positive whole number followed by a unit s, m, h, d or w (e.g. 1m, 4h, 1d)",
        ));
    }
    let n: i64 = number.parse().map_err(|_| err("number is too large"))?;
    if n == 0 {
        return Err(err("timeframe must be positive"));
    }
    n.checked_mul(unit_secs)
        .ok_or_else(|| err("timeframe is too large"))
}

/// Formats a number of seconds as a timeframe string using the largest unit
/// that divides it exactly: `60 -> "1m"`, `5400 -> "90m"`, `86400 -> "1d"`,
/// `604800 -> "1w"`, `45 -> "45s"`. Inverse of [`parse_timeframe`] for
/// positive inputs; `0` gives `"0s"` and negative inputs keep their sign.
pub fn format_timeframe(secs: i64) -> String {
    if secs == 0 {
        return "0s".to_string();
    }
    for (unit, unit_secs) in TIMEFRAME_UNITS {
        if secs % unit_secs == 0 {
            return format!("{}{unit}", secs / unit_secs);
        }
    }
    format!("{secs}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Candles {
        let mut c = Candles::new();
        for i in 0..5 {
            let p = 100.0 + i as f64;
            c.push(1_000 + 60 * i, p, p + 2.0, p - 1.0, p + 1.0, 10.0);
        }
        c
    }

    #[test]
    fn len_push_and_empty() {
        let mut c = Candles::default();
        assert!(c.is_empty());
        assert_eq!(c.len(), 0);
        c.push(1, 1.0, 2.0, 0.5, 1.5, 3.0);
        assert!(!c.is_empty());
        assert_eq!(c.len(), 1);
        assert_eq!(c.ts, vec![1]);
        assert_eq!(c.open, vec![1.0]);
        assert_eq!(c.high, vec![2.0]);
        assert_eq!(c.low, vec![0.5]);
        assert_eq!(c.close, vec![1.5]);
        assert_eq!(c.volume, vec![3.0]);
    }

    fn with_ts(ts: &[i64]) -> Candles {
        let mut c = Candles::new();
        for &t in ts {
            c.push(t, 1.0, 1.0, 1.0, 1.0, 0.0);
        }
        c
    }

    #[test]
    fn timeframe_detection() {
        assert_eq!(with_ts(&[]).timeframe_secs(), None);
        assert_eq!(with_ts(&[5]).timeframe_secs(), None);
        assert_eq!(with_ts(&[0, 60]).timeframe_secs(), Some(60));
        // Gaps do not matter: 60 is the most common step.
        assert_eq!(
            with_ts(&[0, 60, 120, 180, 3_600, 3_660, 3_720]).timeframe_secs(),
            Some(60)
        );
        // Tie between 300 (x2) and 60 (x2): the smaller wins.
        assert_eq!(with_ts(&[0, 300, 600, 660, 720]).timeframe_secs(), Some(60));
        // Most common wins even if it is not the smallest.
        assert_eq!(
            with_ts(&[0, 10, 3_610, 7_210, 10_810]).timeframe_secs(),
            Some(3_600)
        );
        // Non-positive differences are ignored.
        assert_eq!(with_ts(&[100, 100, 50]).timeframe_secs(), None);
        assert_eq!(
            with_ts(&[0, 86_400, 0, 86_400]).timeframe_secs(),
            Some(86_400)
        );
        // Extreme values do not overflow.
        assert_eq!(with_ts(&[i64::MIN, i64::MAX]).timeframe_secs(), None);
    }

    #[test]
    fn range_is_inclusive() {
        let c = sample(); // ts 1000, 1060, 1120, 1180, 1240
        let r = c.range(1_060, 1_180);
        assert_eq!(r.ts, vec![1_060, 1_120, 1_180]);
        assert_eq!(r.open, vec![101.0, 102.0, 103.0]);
        assert_eq!(r.volume.len(), 3);
        assert_eq!(c.range(1_000, 1_000).ts, vec![1_000]);
        assert_eq!(c.range(1_240, 1_240).ts, vec![1_240]);
        assert_eq!(c.range(1_061, 1_179).ts, vec![1_120]);
        assert_eq!(c.range(i64::MIN, i64::MAX), c);
        assert!(c.range(1_241, 2_000).is_empty());
        assert!(c.range(0, 999).is_empty());
        assert!(c.range(1_180, 1_060).is_empty());
        assert_eq!(c.range(1_000, 1_240), c);
    }

    #[test]
    fn validate_accepts_good_data() {
        sample().validate().unwrap();
        Candles::new().validate().unwrap();
        // Flat bar with zero volume is fine.
        with_ts(&[1, 2]).validate().unwrap();
    }

    #[test]
    fn validate_reports_index() {
        let mut c = sample();
        c.ts[3] = c.ts[2];
        let e = c.validate().unwrap_err();
        assert!(
            matches!(e, CandleError::NotIncreasing { index: 3, .. }),
            "{e}"
        );
        assert!(e.to_string().starts_with("bar 3:"), "{e}");

        let mut c = sample();
        c.low[2] = f64::NAN;
        let e = c.validate().unwrap_err();
        assert!(
            matches!(
                e,
                CandleError::NonFinite {
                    index: 2,
                    field: "low",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(e.index(), Some(2));

        let mut c = sample();
        c.volume[4] = f64::INFINITY;
        assert!(matches!(
            c.validate().unwrap_err(),
            CandleError::NonFinite {
                index: 4,
                field: "volume",
                ..
            }
        ));

        let mut c = sample();
        c.high[1] = c.close[1] - 0.5; // close > open in the sample
        let e = c.validate().unwrap_err();
        assert!(
            matches!(
                e,
                CandleError::HighBelowBody {
                    index: 1,
                    field: "close",
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "bar 1: high 101.5 is below close 102; high must be >= open and close"
        );

        let mut c = sample();
        c.low[0] = c.open[0] + 0.25;
        assert!(matches!(
            c.validate().unwrap_err(),
            CandleError::LowAboveBody {
                index: 0,
                field: "open",
                ..
            }
        ));

        let mut c = sample();
        c.volume[2] = -1.0;
        assert!(matches!(
            c.validate().unwrap_err(),
            CandleError::NegativeVolume { index: 2, .. }
        ));

        let mut c = sample();
        c.close.pop();
        let e = c.validate().unwrap_err();
        assert!(
            matches!(
                e,
                CandleError::LengthMismatch {
                    column: "close",
                    len: 4,
                    expected: 5
                }
            ),
            "{e}"
        );
        assert_eq!(e.index(), None);
    }

    #[test]
    fn range_tolerates_mismatched_columns() {
        let mut c = sample();
        c.close.truncate(2);
        assert_eq!(c.range(0, i64::MAX).len(), 2);
    }

    #[test]
    fn timeframe_parsing() {
        let cases = [
            ("1s", 1),
            ("30s", 30),
            ("1m", 60),
            ("5m", 300),
            ("15m", 900),
            ("1h", 3_600),
            ("4h", 14_400),
            ("1d", 86_400),
            ("1w", 604_800),
            (" 90m ", 5_400),
        ];
        for (s, secs) in cases {
            assert_eq!(parse_timeframe(s).unwrap(), secs, "{s}");
        }
        for bad in [
            "",
            "  ",
            "m",
            "1",
            "60",
            "0m",
            "-1m",
            "+1m",
            "1.5h",
            "1M",
            "1H",
            "1x",
            "1 m",
            "1mo",
            "99999999999999999999m",
            "9223372036854775807w",
            "１m",
        ] {
            let e = parse_timeframe(bad).unwrap_err();
            assert!(
                matches!(e, CandleError::InvalidTimeframe { .. }),
                "{bad}: {e}"
            );
            assert!(e.to_string().contains(&format!("`{bad}`")), "{e}");
        }
        assert!(parse_timeframe("1M")
            .unwrap_err()
            .to_string()
            .contains("months"));
        assert!(parse_timeframe("60")
            .unwrap_err()
            .to_string()
            .contains("missing unit"));
    }

    #[test]
    fn timeframe_formatting() {
        assert_eq!(format_timeframe(1), "1s");
        assert_eq!(format_timeframe(45), "45s");
        assert_eq!(format_timeframe(60), "1m");
        assert_eq!(format_timeframe(90), "90s");
        assert_eq!(format_timeframe(900), "15m");
        assert_eq!(format_timeframe(5_400), "90m");
        assert_eq!(format_timeframe(3_600), "1h");
        assert_eq!(format_timeframe(14_400), "4h");
        assert_eq!(format_timeframe(86_400), "1d");
        assert_eq!(format_timeframe(172_800), "2d");
        assert_eq!(format_timeframe(604_800), "1w");
        assert_eq!(format_timeframe(1_209_600), "2w");
        assert_eq!(format_timeframe(0), "0s");
        assert_eq!(format_timeframe(-3_600), "-1h");
        for secs in [
            1, 59, 60, 61, 3_599, 3_600, 86_399, 86_400, 604_800, 1_000_000,
        ] {
            assert_eq!(parse_timeframe(&format_timeframe(secs)).unwrap(), secs);
        }
    }
}
