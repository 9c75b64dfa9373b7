//! Mark prices of a perpetual run (docs/conventions/engine.md, "Perpetual
//! futures", "Trigger"): the imported mark-price candles where a bar has
//! one, otherwise the trade candles.

use crate::candles::Candles;

/// Per trade bar: the mark open, high, low and close.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MarkView<'a> {
    pub open: &'a [f64],
    pub high: &'a [f64],
    pub low: &'a [f64],
    pub close: &'a [f64],
    /// The marks are the trade candles themselves.
    pub is_trade: bool,
}

impl<'a> MarkView<'a> {
    /// The trade candles as their own marks (no mark series given).
    pub fn of(candles: &'a Candles) -> Self {
        Self {
            open: &candles.open,
            high: &candles.high,
            low: &candles.low,
            close: &candles.close,
            is_trade: true,
        }
    }
}

/// Bars per block of [`Extremes`].
const BLOCK: usize = 32;

/// The lowest low and highest high of each block of [`BLOCK`] bars, so a
/// scan for the first bar that touches a price skips whole blocks that
/// stay inside it (an open position always has a price to watch, its
/// LP, where spot often has none: without this, the scan cost the
/// perpetual loop about a third of its speed).
#[derive(Debug, Default)]
pub(crate) struct Extremes {
    low: Vec<f64>,
    high: Vec<f64>,
}

impl Extremes {
    pub fn new(lows: &[f64], highs: &[f64]) -> Self {
        let low = lows
            .chunks(BLOCK)
            .map(|c| {
                let mut m = f64::INFINITY;
                for &x in c {
                    m = if x < m { x } else { m };
                }
                m
            })
            .collect();
        let high = highs
            .chunks(BLOCK)
            .map(|c| {
                let mut m = f64::NEG_INFINITY;
                for &x in c {
                    m = if x > m { x } else { m };
                }
                m
            })
            .collect();
        Self { low, high }
    }

    /// First bar in `from..limit` whose low is at or below `floor` or whose
    /// high is at or above `ceiling`; `limit` when none is.
    pub fn first_touch(
        &self,
        lows: &[f64],
        highs: &[f64],
        floor: f64,
        ceiling: f64,
        from: usize,
        limit: usize,
    ) -> usize {
        if floor == f64::NEG_INFINITY && ceiling == f64::INFINITY {
            return limit;
        }
        let mut j = from;
        while j < limit {
            if j.is_multiple_of(BLOCK) && j + BLOCK <= limit {
                let b = j / BLOCK;
                if self.low[b] > floor && self.high[b] < ceiling {
                    j += BLOCK;
                    continue;
                }
            }
            if lows[j] <= floor || highs[j] >= ceiling {
                return j;
            }
            j += 1;
        }
        limit
    }
}

/// Mark candles aligned to the trade bars by open time: a trade bar
/// without a mark bar of the same `ts` takes its own prices.
#[derive(Debug, Default)]
pub(crate) struct AlignedMarks {
    open: Vec<f64>,
    high: Vec<f64>,
    low: Vec<f64>,
    close: Vec<f64>,
}

impl AlignedMarks {
    pub fn new(trades: &Candles, marks: &Candles) -> Self {
        let n = trades.len();
        let mut out = Self {
            open: trades.open.clone(),
            high: trades.high.clone(),
            low: trades.low.clone(),
            close: trades.close.clone(),
        };
        let mut j = 0;
        for i in 0..n {
            let ts = trades.ts[i];
            while j < marks.len() && marks.ts[j] < ts {
                j += 1;
            }
            if j < marks.len() && marks.ts[j] == ts {
                out.open[i] = marks.open[j];
                out.high[i] = marks.high[j];
                out.low[i] = marks.low[j];
                out.close[i] = marks.close[j];
            }
        }
        out
    }

    pub fn view(&self) -> MarkView<'_> {
        MarkView {
            open: &self.open,
            high: &self.high,
            low: &self.low,
            close: &self.close,
            is_trade: false,
        }
    }
}
