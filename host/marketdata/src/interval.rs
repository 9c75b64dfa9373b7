//! Bybit kline intervals (`1 3 5 15 30 60 120 240 360 720 D W`) and their
//! grid: where bars open, in unix seconds.

use crate::{Error, Result};
use stratbox_engine::candles::parse_timeframe;

/// Bybit's interval codes with their length in seconds. `M` (a month) is
/// left out: its bars have no fixed length, so neither the gap check nor
/// the candle store's fixed timeframe applies.
const CODES: [(&str, i64); 12] = [
    ("1", 60),
    ("3", 180),
    ("5", 300),
    ("15", 900),
    ("30", 1_800),
    ("60", 3_600),
    ("120", 7_200),
    ("240", 14_400),
    ("360", 21_600),
    ("720", 43_200),
    ("D", 86_400),
    ("W", 604_800),
];

/// Weekly bars open on Mondays 00:00 UTC; 1970-01-05 is the first Monday
/// after the epoch (a Thursday), so it anchors the weekly grid.
const WEEK_ANCHOR: i64 = 4 * 86_400;

/// One kline interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval {
    code: &'static str,
    secs: i64,
}

impl Interval {
    /// Parses Bybit's code (`60`, `D`, `W`) or the project's timeframe form
    /// (`1h`, `1d`, `1w`).
    pub fn parse(text: &str) -> Result<Interval> {
        let t = text.trim();
        if t == "M" {
            return Err(Error::invalid(
                "interval",
                "monthly bars (`M`) have no fixed length and are not supported; use D or W",
            ));
        }
        let secs = match CODES.iter().find(|(c, _)| *c == t) {
            Some(&(_, secs)) => secs,
            None => parse_timeframe(t).map_err(|_| {
                Error::invalid(
                    "interval",
                    format!("`{t}` is not one of 1 3 5 15 30 60 120 240 360 720 D W (or 1m, 1h, 1d, 1w)"),
                )
            })?,
        };
        CODES
            .iter()
            .find(|(_, s)| *s == secs)
            .map(|&(code, secs)| Interval { code, secs })
            .ok_or_else(|| {
                Error::invalid(
                    "interval",
                    format!("`{t}` is not a Bybit interval (1 3 5 15 30 60 120 240 360 720 D W)"),
                )
            })
    }

    /// The code Bybit's `interval` parameter takes.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Bar length in seconds.
    pub fn secs(&self) -> i64 {
        self.secs
    }

    fn anchor(&self) -> i64 {
        if self.secs == 604_800 {
            WEEK_ANCHOR
        } else {
            0
        }
    }

    /// The first bar open at or after `ts`.
    pub fn ceil(&self, ts: i64) -> i64 {
        let a = self.anchor();
        let r = (ts - a).rem_euclid(self.secs);
        if r == 0 {
            ts
        } else {
            ts - r + self.secs
        }
    }

    /// Whether a bar can open at `ts`.
    pub fn on_grid(&self, ts: i64) -> bool {
        (ts - self.anchor()).rem_euclid(self.secs) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_timeframes() {
        assert_eq!(Interval::parse("60").unwrap().secs(), 3_600);
        assert_eq!(Interval::parse("1h").unwrap().code(), "60");
        assert_eq!(Interval::parse("1d").unwrap().code(), "D");
        assert_eq!(Interval::parse("W").unwrap().secs(), 604_800);
        for bad in ["M", "2", "7m", "x", ""] {
            let e = Interval::parse(bad).unwrap_err();
            assert!(e.to_string().starts_with("invalid interval"), "{e}");
        }
    }

    #[test]
    fn grid() {
        let h = Interval::parse("60").unwrap();
        assert_eq!(h.ceil(3_600), 3_600);
        assert_eq!(h.ceil(3_601), 7_200);
        let w = Interval::parse("W").unwrap();
        // 2024-01-01 was a Monday.
        assert!(w.on_grid(1_704_067_200));
        assert_eq!(w.ceil(1_704_067_201), 1_704_067_200 + 604_800);
    }
}
