//! Maximum drawdown, the longest drawdown duration, and the average
//! drawdown's depth and duration.

/// Result of [`MaxDrawdown::compute`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Drawdown {
    /// Deepest fall from a running peak, in percent of that peak, as a
    /// non-negative number (`20.0` means equity fell 20 % below its peak).
    /// `0.0` when equity never went below its peak. Can exceed 100 when
    /// equity goes negative.
    pub max_drawdown_pct: f64,
    /// Longest drawdown, in bars, from the peak to the recovery bar (or the
    /// last bar). `0` when equity never went below its peak.
    pub max_drawdown_duration_bars: usize,
    /// Longest drawdown, in seconds of bar timestamps, from the peak to the
    /// recovery bar (or the last bar). `0` when equity never went below its
    /// peak.
    pub max_drawdown_duration_secs: i64,
    /// Mean depth of the drawdowns (each one's deepest fall, in percent of
    /// its peak, as `max_drawdown_pct`); `0.0` when there was none.
    pub avg_drawdown_pct: f64,
    /// Mean length of the drawdowns in seconds (each as in
    /// `max_drawdown_duration_secs`); `0.0` when there was none.
    pub avg_drawdown_duration_secs: f64,
}

/// Maximum drawdown (depth) and the longest drawdown (duration) of an
/// equity curve.
///
/// # Depth
///
/// The running peak starts at `initial_capital` and is
/// `peak_i = max(initial_capital, equity[0], …, equity[i])`. Then
///
/// ```text
/// drawdown_i       = (peak_i - equity[i]) / peak_i
/// max_drawdown_pct = max(0, max_i drawdown_i) × 100
/// ```
///
/// While the running peak is `<= 0` (only possible with
/// `initial_capital <= 0`) the drawdown fraction is undefined and is not
/// counted.
///
/// # Duration
///
/// A *drawdown* starts at a peak: the bar `p` where the running peak was
/// last set (equity `>=` the previous peak; equalling the peak counts as a
/// new peak), provided some later bar closes below it. It ends at the first
/// bar `q > p` whose equity is back to `>=` that peak, or, if it never gets
/// back, at the last bar `q = n - 1`. Its length is
///
/// ```text
/// bars = q - p
/// secs = ts[q] - ts[p]
/// ```
///
/// The initial capital is a peak set *before* bar 0: for it `p = -1` in
/// bars, and its timestamp is taken as `ts[0]` (the open of bar 0, which is
/// when the initial capital is valued; there is no earlier timestamp). A
/// drawdown from the initial capital is therefore one bar longer in `bars`
/// than `secs / bar_seconds`: equity `[90, 100]` from a capital of `100`
/// gives 2 bars but `ts[1] - ts[0]` seconds.
///
/// `max_drawdown_duration_bars` and `max_drawdown_duration_secs` are the
/// maxima of `bars` and of `secs` over all drawdowns, taken separately: with
/// gaps in the timestamps, or the initial-capital offset above, they can
/// come from different drawdowns. Neither need be the drawdown of
/// `max_drawdown_pct`. All three are `0` when equity never goes below its
/// peak, including for an empty `equity`.
///
/// # Averages
///
/// Over the drawdowns as defined above (one per peak that equity fell
/// below, the last one possibly unrecovered), in the order they end:
///
/// ```text
/// avg_drawdown_pct           = Σ depth_k / count × 100   (depth as above)
/// avg_drawdown_duration_secs = Σ secs_k / count
/// ```
///
/// A drawdown under a peak `<= 0` has no depth and is left out of the
/// depth mean (its duration still counts). Both are `0.0` with no drawdown.
/// They are folded as each drawdown ends: nothing is added per bar.
///
/// `ts` must hold one timestamp (seconds) per bar, non-decreasing; a missing
/// timestamp (a `ts` shorter than `equity`, a caller bug caught by a debug
/// assertion) counts as 0 seconds.
pub struct MaxDrawdown;

impl MaxDrawdown {
    /// See [`MaxDrawdown`].
    pub fn compute(initial_capital: f64, equity: &[f64], ts: &[i64]) -> Drawdown {
        debug_assert_eq!(ts.len(), equity.len(), "one timestamp per bar");
        let mut tracker = DrawdownTracker::new(initial_capital);
        for (i, &value) in equity.iter().enumerate() {
            tracker.push(i, value, ts);
        }
        tracker.finish(equity.len(), ts)
    }
}

/// [`MaxDrawdown`] one bar at a time, so the engine needs no stored curve.
///
/// Under one peak the deepest fraction is the one at the lowest equity
/// (rounding is monotonic), so the division happens once per peak, not once
/// per bar: the result is bit-identical to dividing at every bar.
#[derive(Debug, Clone, Copy)]
pub struct DrawdownTracker {
    peak: f64,
    /// Bar where the running peak was set; `None` is the initial capital.
    peak_bar: Option<usize>,
    underwater: bool,
    /// Lowest equity since the peak, while underwater.
    trough: f64,
    max_fraction: f64,
    /// Σ depth and count of the drawdowns with a depth; Σ secs and count
    /// of all drawdowns.
    depth_sum: f64,
    depths: usize,
    duration_sum_secs: i64,
    drawdowns: usize,
    result: Drawdown,
}

impl DrawdownTracker {
    pub fn new(initial_capital: f64) -> Self {
        Self {
            peak: initial_capital,
            peak_bar: None,
            underwater: false,
            trough: f64::INFINITY,
            max_fraction: 0.0,
            depth_sum: 0.0,
            depths: 0,
            duration_sum_secs: 0,
            drawdowns: 0,
            result: Drawdown::default(),
        }
    }

    /// Equity `value` at bar `i` (bars in order, from 0).
    #[inline]
    pub fn push(&mut self, i: usize, value: f64, ts: &[i64]) {
        if value >= self.peak {
            if self.underwater {
                self.close_peak(i, ts);
            }
            self.peak = value;
            self.peak_bar = Some(i);
        } else {
            self.underwater = true;
            // A compare, not `f64::min` (whose NaN handling costs more
            // per bar): a NaN equity never lowers the trough, as its
            // fraction, not finite, never counted.
            if value < self.trough {
                self.trough = value;
            }
        }
    }

    /// The same equity `value` at bars `from..=to`. Bit-identical to
    /// pushing it at each bar: a value that set the peak at `from` sets it
    /// again at every later bar (only the peak bar moves); one below the
    /// peak, or NaN, changes nothing after the first.
    pub fn push_constant(&mut self, from: usize, to: usize, value: f64, ts: &[i64]) {
        self.push(from, value, ts);
        if to > from && self.peak_bar == Some(from) {
            self.peak_bar = Some(to);
        }
    }

    /// The figures after `bars` bars.
    pub fn finish(mut self, bars: usize, ts: &[i64]) -> Drawdown {
        if self.underwater {
            if let Some(last) = bars.checked_sub(1) {
                self.close_peak(last, ts);
            }
        }
        self.result.max_drawdown_pct = super::finite_or_zero(self.max_fraction * 100.0);
        if self.depths > 0 {
            self.result.avg_drawdown_pct =
                super::finite_or_zero(self.depth_sum / self.depths as f64 * 100.0);
        }
        if self.drawdowns > 0 {
            self.result.avg_drawdown_duration_secs =
                self.duration_sum_secs as f64 / self.drawdowns as f64;
        }
        self.result
    }

    /// Ends the drawdown under the current peak at bar `end`.
    fn close_peak(&mut self, end: usize, ts: &[i64]) {
        if self.peak > 0.0 {
            let fraction = (self.peak - self.trough) / self.peak;
            if fraction.is_finite() && fraction > self.max_fraction {
                self.max_fraction = fraction;
            }
            if fraction.is_finite() {
                self.depth_sum += fraction;
                self.depths += 1;
            }
        }
        let secs = record_duration(&mut self.result, self.peak_bar, end, ts);
        self.duration_sum_secs = self.duration_sum_secs.saturating_add(secs);
        self.drawdowns += 1;
        self.underwater = false;
        self.trough = f64::INFINITY;
    }
}

/// Folds the drawdown from `peak_bar` (`None`: the initial capital) to `end`
/// into the running maxima; returns its length in seconds.
fn record_duration(result: &mut Drawdown, peak_bar: Option<usize>, end: usize, ts: &[i64]) -> i64 {
    let bars = match peak_bar {
        Some(p) => end - p,
        None => end + 1,
    };
    let secs = match (ts.get(peak_bar.unwrap_or(0)), ts.get(end)) {
        (Some(&start), Some(&stop)) => stop.saturating_sub(start),
        _ => 0,
    };
    result.max_drawdown_duration_bars = result.max_drawdown_duration_bars.max(bars);
    result.max_drawdown_duration_secs = result.max_drawdown_duration_secs.max(secs);
    secs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Minute bars starting at `start`.
    fn minutes(start: i64, n: usize) -> Vec<i64> {
        (0..n as i64).map(|i| start + 60 * i).collect()
    }

    #[test]
    fn two_drawdowns_recovered() {
        // initial 100, equity [110, 99, 88, 110, 120, 108, 121], ts 0, 60, …
        // bar 0: 110 >= 100 -> peak 110 set at bar 0 (no drawdown yet)
        // bar 1:  99 -> (110 -  99) / 110 = 0.1
        // bar 2:  88 -> (110 -  88) / 110 = 22 / 110 = 0.2
        // bar 3: 110 >= 110 -> recovered: 3 - 0 = 3 bars, ts 180 - 0 = 180 s
        // bar 4: 120 -> new peak at bar 4
        // bar 5: 108 -> (120 - 108) / 120 = 0.1
        // bar 6: 121 -> recovered: 6 - 4 = 2 bars, 360 - 240 = 120 s
        // max depth 0.2 × 100 = 20 (0.2 rounds up by 1.1e-17, lost in × 100)
        // averages: depth (0.2 + 0.1) / 2 × 100 = 15, secs (180 + 120) / 2 = 150
        let equity = [110.0, 99.0, 88.0, 110.0, 120.0, 108.0, 121.0];
        let dd = MaxDrawdown::compute(100.0, &equity, &minutes(0, equity.len()));
        assert_eq!(
            (
                dd.max_drawdown_pct,
                dd.max_drawdown_duration_bars,
                dd.max_drawdown_duration_secs
            ),
            (20.0, 3, 180)
        );
        assert!((dd.avg_drawdown_pct - 15.0).abs() < 1e-12, "{dd:?}");
        assert_eq!(dd.avg_drawdown_duration_secs, 150.0);
    }

    #[test]
    fn drawdown_from_initial_capital_never_recovered() {
        // initial 100, equity [90, 95, 80], ts 1000, 1060, 1120
        // peak 100 is the initial capital (p = -1, timestamp ts[0] = 1000)
        // depths 10 / 100, 5 / 100, 20 / 100 -> max 0.2 -> 20 %
        // never recovered: ends at the last bar q = 2:
        // bars = 2 - (-1) = 3, secs = 1120 - 1000 = 120
        let dd = MaxDrawdown::compute(100.0, &[90.0, 95.0, 80.0], &minutes(1_000, 3));
        assert_eq!(dd.max_drawdown_pct, 20.0);
        // One drawdown: its depth and length are the averages.
        assert_eq!(
            (dd.avg_drawdown_pct, dd.avg_drawdown_duration_secs),
            (20.0, 120.0)
        );
        assert_eq!(dd.max_drawdown_duration_bars, 3);
        assert_eq!(dd.max_drawdown_duration_secs, 120);
    }

    #[test]
    fn bar_and_second_maxima_are_taken_separately() {
        // initial 100, equity [90, 100, 50, 60], ts 0, 60, 120, 180
        // drawdown A from the initial capital: bar 0 at 90, recovered at
        //   bar 1: bars = 1 - (-1) = 2, secs = ts[1] - ts[0] = 60
        // drawdown B from the peak 100 at bar 1: 50, 60, never recovered,
        //   ends at bar 3: bars = 3 - 1 = 2, secs = 180 - 60 = 120
        // depth: (100 - 50) / 100 = 0.5 -> 50 %
        let dd = MaxDrawdown::compute(100.0, &[90.0, 100.0, 50.0, 60.0], &minutes(0, 4));
        assert_eq!(dd.max_drawdown_pct, 50.0);
        assert_eq!(dd.max_drawdown_duration_bars, 2);
        assert_eq!(dd.max_drawdown_duration_secs, 120);
    }

    #[test]
    fn duration_in_seconds_follows_timestamp_gaps() {
        // initial 100, equity [100, 90, 100], ts [0, 60, 3600] (data gap)
        // peak 100 re-set at bar 0 (equal counts as a peak); bar 1 at 90;
        // recovered at bar 2: bars = 2 - 0 = 2, secs = 3600 - 0 = 3600
        // depth 10 / 100 = 0.1 -> 0.1 × 100 = 10 exactly
        let dd = MaxDrawdown::compute(100.0, &[100.0, 90.0, 100.0], &[0, 60, 3_600]);
        assert_eq!(dd.max_drawdown_pct, 10.0);
        assert_eq!(dd.max_drawdown_duration_bars, 2);
        assert_eq!(dd.max_drawdown_duration_secs, 3_600);
    }

    #[test]
    fn negative_equity_is_deeper_than_100_percent() {
        // initial 100, equity [-50]: (100 - (-50)) / 100 = 1.5 -> 150 %
        // from the initial capital to the last bar 0: bars = 0 - (-1) = 1,
        // secs = ts[0] - ts[0] = 0
        let dd = MaxDrawdown::compute(100.0, &[-50.0], &[500]);
        assert_eq!(dd.max_drawdown_pct, 150.0);
        assert_eq!(dd.max_drawdown_duration_bars, 1);
        assert_eq!(dd.max_drawdown_duration_secs, 0);
    }

    #[test]
    fn depth_is_rounded_once_per_bar() {
        // initial 3, equity [2]: (3 - 2) / 3 = 1/3 -> 33.333...%
        // (1/3 rounded, then × 100 rounded; within 1e-12 relative)
        let dd = MaxDrawdown::compute(3.0, &[2.0], &[0]);
        super::super::test_support::assert_close(dd.max_drawdown_pct, 100.0 / 3.0);
    }

    #[test]
    fn never_below_peak_is_zero() {
        // Equal to the peak is not a drawdown.
        let dd = MaxDrawdown::compute(100.0, &[100.0, 100.0, 101.0], &minutes(0, 3));
        assert_eq!(dd, Drawdown::default());
        let dd = MaxDrawdown::compute(100.0, &[100.0, 150.0, 200.0], &minutes(0, 3));
        assert_eq!(dd, Drawdown::default());
    }

    #[test]
    fn empty_equity_is_zero() {
        assert_eq!(MaxDrawdown::compute(100.0, &[], &[]), Drawdown::default());
    }

    #[test]
    fn non_positive_peak_has_no_depth() {
        // initial 0, equity [-5, 10, 5], ts 0, 60, 120
        // bar 0: -5 < 0, underwater, but depth undefined with peak 0
        // bar 1: 10 >= 0, recovered: bars = 1 - (-1) = 2, secs = 60 - 0 = 60;
        //        new peak 10 at bar 1
        // bar 2: 5 -> (10 - 5) / 10 = 0.5 -> 50 %; to the end: bars 1, 60 s
        let dd = MaxDrawdown::compute(0.0, &[-5.0, 10.0, 5.0], &minutes(0, 3));
        assert_eq!(dd.max_drawdown_pct, 50.0);
        assert_eq!(dd.max_drawdown_duration_bars, 2);
        assert_eq!(dd.max_drawdown_duration_secs, 60);
    }

    #[test]
    fn push_constant_equals_pushing_each_bar() {
        let ts: Vec<i64> = (0..40).map(|k| k * 60).collect();
        // Below, at and above the peak, and NaN, after a rise and a fall.
        for value in [90.0, 100.0, 105.0, 120.0, f64::NAN] {
            let (mut each, mut constant) =
                (DrawdownTracker::new(100.0), DrawdownTracker::new(100.0));
            for (i, v) in [110.0, 95.0].into_iter().enumerate() {
                each.push(i, v, &ts);
                constant.push(i, v, &ts);
            }
            for i in 2..=20 {
                each.push(i, value, &ts);
            }
            constant.push_constant(2, 20, value, &ts);
            for (i, v) in [80.0, 130.0, 70.0].into_iter().enumerate() {
                each.push(21 + i, v, &ts);
                constant.push(21 + i, v, &ts);
            }
            assert_eq!(each.finish(24, &ts), constant.finish(24, &ts), "{value}");
        }
    }
}
