//! Streaming technical indicators: feed one value (or bar) at a time.
//!
//! Every indicator follows the same shape:
//!
//! * `new(...)` builds it. A period of `0` is treated as `1` (clamped), so a
//!   bad strategy parameter never panics and never traps the guest.
//! * `update(&mut self, ...)` consumes the next bar and returns `None` while
//!   the indicator is still warming up, `Some(..)` afterwards.
//! * `value(&self)` returns the value produced by the last `update`.
//! * `is_ready(&self)` tells whether the warm-up is over.
//!
//! # Bit reproducibility
//!
//! Backtests must give the same numbers in every engine that replays a
//! strategy, so each indicator documents the exact floating-point expression
//! it evaluates, including the order of operations. Rust never fuses
//! `a * b + c` into a fused multiply-add, so another engine reproduces these
//! values bit for bit as long as it evaluates the same expressions in IEEE-754
//! double precision without FMA contraction. Sums over a window are always
//! accumulated as `s = 0.0; for v in window (oldest -> newest) { s += v }`.
//! Integer periods are converted with `n as f64` (exact for any realistic
//! period).
//!
//! Inputs are expected to be finite; NaN and infinities are not filtered and
//! propagate according to IEEE-754 rules (for [`Rsi`] a NaN price change
//! counts as neither a gain nor a loss).
//!
//! # Allocation
//!
//! Windowed indicators ([`Sma`], [`BollingerBands`]) keep a ring buffer of
//! `period` values. Its capacity is reserved once in `new`; if that
//! reservation fails (an absurdly large period), `new` still succeeds and the
//! buffer only grows as values arrive, up to `period` values.

/// Fixed-capacity ring buffer of the last `cap` values.
#[derive(Debug, Clone)]
struct Window {
    buf: Vec<f64>,
    cap: usize,
    /// Index of the oldest value once the buffer is full; `0` before that.
    head: usize,
}

impl Window {
    /// `cap` must be at least 1 (callers clamp).
    fn new(cap: usize) -> Self {
        let mut buf = Vec::new();
        // Best effort: an impossible reservation must not abort the guest;
        // the buffer then grows on demand in `push`.
        let _ = buf.try_reserve_exact(cap);
        Self { buf, cap, head: 0 }
    }

    fn push(&mut self, x: f64) {
        if self.buf.len() < self.cap {
            self.buf.push(x);
        } else {
            if let Some(slot) = self.buf.get_mut(self.head) {
                *slot = x;
            }
            self.head += 1;
            if self.head == self.cap {
                self.head = 0;
            }
        }
    }

    fn is_full(&self) -> bool {
        self.buf.len() == self.cap
    }

    /// Values from oldest to newest.
    fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let (newer, older) = self.buf.split_at(self.head);
        older.iter().chain(newer.iter()).copied()
    }

    /// `s = 0.0; for v in window (oldest -> newest) { s += v }`.
    fn sum(&self) -> f64 {
        let mut s = 0.0;
        for v in self.iter() {
            s += v;
        }
        s
    }
}

/// Exponential moving average.
///
/// `alpha = 2.0 / (n as f64 + 1.0)`; the first update sets `ema = x`, every
/// later update computes `ema = alpha * x + (1.0 - alpha) * ema` (exactly this
/// expression). Ready from the first value (`ema[0] = x[0]`).
#[derive(Debug, Clone)]
pub struct Ema {
    period: usize,
    alpha: f64,
    value: Option<f64>,
}

impl Ema {
    /// EMA over `period` values; a period of 0 is treated as 1.
    #[must_use]
    pub fn new(period: usize) -> Self {
        let period = period.max(1);
        Self {
            period,
            alpha: 2.0 / (period as f64 + 1.0),
            value: None,
        }
    }

    /// Feeds `x`; returns the new EMA (always `Some`: EMA is seeded with the
    /// first value).
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        let next = match self.value {
            None => x,
            Some(ema) => self.alpha * x + (1.0 - self.alpha) * ema,
        };
        self.value = Some(next);
        self.value
    }

    /// The last EMA, `None` before the first update.
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    /// True once at least one value has been fed.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// The effective (clamped) period.
    #[must_use]
    pub fn period(&self) -> usize {
        self.period
    }

    /// The smoothing factor `2.0 / (period as f64 + 1.0)`.
    #[must_use]
    pub fn alpha(&self) -> f64 {
        self.alpha
    }
}

/// Simple moving average of the last `n` values.
///
/// `sma = (x[i-n+1] + ... + x[i]) / n as f64`, the sum accumulated from
/// `0.0`, oldest to newest. The window is re-summed on every update (O(n)):
/// a running sum (`sum += new - old`) accumulates rounding error that depends
/// on the whole history, so it would not be bit-reproducible by an engine
/// that starts mid-stream or sums the window directly. `None` until `n`
/// values have been seen.
#[derive(Debug, Clone)]
pub struct Sma {
    window: Window,
    value: Option<f64>,
}

impl Sma {
    /// SMA over `period` values; a period of 0 is treated as 1.
    #[must_use]
    pub fn new(period: usize) -> Self {
        Self {
            window: Window::new(period.max(1)),
            value: None,
        }
    }

    /// Feeds `x`; returns the SMA once `period` values have been seen.
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        self.window.push(x);
        if self.window.is_full() {
            self.value = Some(self.window.sum() / self.window.cap as f64);
        }
        self.value
    }

    /// The last SMA, `None` during warm-up.
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    /// True once `period` values have been seen.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// The effective (clamped) period.
    #[must_use]
    pub fn period(&self) -> usize {
        self.window.cap
    }
}

/// Wilder's relative strength index.
///
/// For each price change `d = x[i] - x[i-1]`: `gain = d` if `d > 0.0` else
/// `0.0`, `loss = -d` if `d < 0.0` else `0.0`. The first averages are the
/// simple means of the first `n` gains/losses (`sum / n as f64`, summed from
/// `0.0` in order), which needs `n + 1` prices. After that
/// `avg = (avg * (n - 1) as f64 + current) / n as f64`.
///
/// `rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)`; if `avg_loss == 0.0`
/// then `rsi = 100.0`, or `50.0` when `avg_gain == 0.0` too. `None` until
/// `n + 1` prices have been seen.
#[derive(Debug, Clone)]
pub struct Rsi {
    period: usize,
    prev: Option<f64>,
    /// Number of price changes seen so far, saturating at `period`.
    changes: usize,
    /// Sums during warm-up, averages afterwards.
    avg_gain: f64,
    avg_loss: f64,
    value: Option<f64>,
}

impl Rsi {
    /// RSI over `period` changes; a period of 0 is treated as 1.
    #[must_use]
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            prev: None,
            changes: 0,
            avg_gain: 0.0,
            avg_loss: 0.0,
            value: None,
        }
    }

    /// Feeds the price `x`; returns the RSI once `period + 1` prices have
    /// been seen.
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<f64> {
        let prev = self.prev.replace(x)?;
        let d = x - prev;
        let gain = if d > 0.0 { d } else { 0.0 };
        let loss = if d < 0.0 { -d } else { 0.0 };
        let n = self.period as f64;
        if self.changes < self.period {
            self.avg_gain += gain;
            self.avg_loss += loss;
            self.changes += 1;
            if self.changes < self.period {
                return None;
            }
            self.avg_gain /= n;
            self.avg_loss /= n;
        } else {
            let n1 = (self.period - 1) as f64;
            self.avg_gain = (self.avg_gain * n1 + gain) / n;
            self.avg_loss = (self.avg_loss * n1 + loss) / n;
        }
        self.value = Some(rsi_from_averages(self.avg_gain, self.avg_loss));
        self.value
    }

    /// The last RSI, `None` during warm-up.
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    /// True once `period + 1` prices have been seen.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// The effective (clamped) period.
    #[must_use]
    pub fn period(&self) -> usize {
        self.period
    }
}

/// `100 - 100 / (1 + gain / loss)` with the `loss == 0` special cases.
fn rsi_from_averages(avg_gain: f64, avg_loss: f64) -> f64 {
    if avg_loss == 0.0 {
        if avg_gain == 0.0 {
            50.0
        } else {
            100.0
        }
    } else {
        100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    }
}

/// Wilder's average true range.
///
/// `tr = max(high - low, |high - prev_close|, |low - prev_close|)`, and
/// `tr = high - low` on the first bar. The first ATR is the simple mean of the
/// first `n` true ranges (`sum / n as f64`, summed from `0.0` in order), then
/// `atr = (atr * (n - 1) as f64 + tr) / n as f64`. `None` until `n` bars have
/// been seen.
#[derive(Debug, Clone)]
pub struct Atr {
    period: usize,
    prev_close: Option<f64>,
    /// Bars seen so far, saturating at `period`.
    bars: usize,
    /// Sum of true ranges during warm-up, the ATR afterwards.
    acc: f64,
    value: Option<f64>,
}

impl Atr {
    /// ATR over `period` bars; a period of 0 is treated as 1.
    #[must_use]
    pub fn new(period: usize) -> Self {
        Self {
            period: period.max(1),
            prev_close: None,
            bars: 0,
            acc: 0.0,
            value: None,
        }
    }

    /// Feeds one bar; returns the ATR once `period` bars have been seen.
    #[inline]
    pub fn update(&mut self, high: f64, low: f64, close: f64) -> Option<f64> {
        let tr = match self.prev_close.replace(close) {
            None => high - low,
            Some(pc) => (high - low).max((high - pc).abs()).max((low - pc).abs()),
        };
        let n = self.period as f64;
        if self.bars < self.period {
            self.acc += tr;
            self.bars += 1;
            if self.bars < self.period {
                return None;
            }
            self.acc /= n;
        } else {
            self.acc = (self.acc * (self.period - 1) as f64 + tr) / n;
        }
        self.value = Some(self.acc);
        self.value
    }

    /// The last ATR, `None` during warm-up.
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        self.value
    }

    /// True once `period` bars have been seen.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// The effective (clamped) period.
    #[must_use]
    pub fn period(&self) -> usize {
        self.period
    }
}

/// Output of [`BollingerBands`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bands {
    /// `middle + k * std`.
    pub upper: f64,
    /// The SMA of the window.
    pub middle: f64,
    /// `middle - k * std`.
    pub lower: f64,
}

/// Bollinger bands over the last `n` values.
///
/// `middle = sum / n as f64` (the [`Sma`] form). The population standard
/// deviation is computed in a second pass: `var = 0.0; for v in window
/// (oldest -> newest) { let d = v - middle; var += d * d }`, then
/// `std = (var / n as f64).sqrt()`. `upper = middle + k * std`,
/// `lower = middle - k * std`. `None` until `n` values have been seen.
#[derive(Debug, Clone)]
pub struct BollingerBands {
    window: Window,
    k: f64,
    value: Option<Bands>,
}

impl BollingerBands {
    /// Bands over `period` values, `k` standard deviations wide; a period of
    /// 0 is treated as 1.
    #[must_use]
    pub fn new(period: usize, k: f64) -> Self {
        Self {
            window: Window::new(period.max(1)),
            k,
            value: None,
        }
    }

    /// Feeds `x`; returns the bands once `period` values have been seen.
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<Bands> {
        self.window.push(x);
        if self.window.is_full() {
            let n = self.window.cap as f64;
            let middle = self.window.sum() / n;
            let mut var = 0.0;
            for v in self.window.iter() {
                let d = v - middle;
                var += d * d;
            }
            let std = (var / n).sqrt();
            self.value = Some(Bands {
                upper: middle + self.k * std,
                middle,
                lower: middle - self.k * std,
            });
        }
        self.value
    }

    /// The last bands, `None` during warm-up.
    #[must_use]
    pub fn value(&self) -> Option<Bands> {
        self.value
    }

    /// True once `period` values have been seen.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// The effective (clamped) period.
    #[must_use]
    pub fn period(&self) -> usize {
        self.window.cap
    }

    /// The band width multiplier `k`.
    #[must_use]
    pub fn k(&self) -> f64 {
        self.k
    }
}

/// Output of [`Macd`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacdValue {
    /// `ema_fast - ema_slow`.
    pub macd: f64,
    /// `EMA(signal)` of `macd`.
    pub signal: f64,
    /// `macd - signal`.
    pub histogram: f64,
}

/// Moving average convergence/divergence.
///
/// `macd = ema_fast(x) - ema_slow(x)`, `signal = ema_signal(macd)`,
/// `histogram = macd - signal`, where all three are [`Ema`]s (seeded with
/// their first input). Ready from the first update, which yields all zeros.
#[derive(Debug, Clone)]
pub struct Macd {
    fast: Ema,
    slow: Ema,
    signal: Ema,
    value: Option<MacdValue>,
}

impl Macd {
    /// MACD with the given EMA periods; each period of 0 is treated as 1.
    #[must_use]
    pub fn new(fast: usize, slow: usize, signal: usize) -> Self {
        Self {
            fast: Ema::new(fast),
            slow: Ema::new(slow),
            signal: Ema::new(signal),
            value: None,
        }
    }

    /// The conventional `(fast, slow, signal)` periods: `(12, 26, 9)`.
    #[must_use]
    pub fn default_periods() -> (usize, usize, usize) {
        (12, 26, 9)
    }

    /// Feeds `x`; returns the new MACD (always `Some`).
    #[inline]
    pub fn update(&mut self, x: f64) -> Option<MacdValue> {
        let fast = self.fast.update(x).unwrap_or(x);
        let slow = self.slow.update(x).unwrap_or(x);
        let macd = fast - slow;
        let signal = self.signal.update(macd).unwrap_or(macd);
        self.value = Some(MacdValue {
            macd,
            signal,
            histogram: macd - signal,
        });
        self.value
    }

    /// The last MACD, `None` before the first update.
    #[must_use]
    pub fn value(&self) -> Option<MacdValue> {
        self.value
    }

    /// True once at least one value has been fed.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.value.is_some()
    }

    /// The effective (clamped) `(fast, slow, signal)` periods.
    #[must_use]
    pub fn periods(&self) -> (usize, usize, usize) {
        (self.fast.period(), self.slow.period(), self.signal.period())
    }
}

/// True when `fast` crossed above `slow` on this bar:
/// `prev_fast < prev_slow && fast > slow` (both strict, so touching without
/// crossing, or starting from equality, does not count; any NaN gives false).
#[must_use]
#[inline]
pub fn crossed_above(prev_fast: f64, prev_slow: f64, fast: f64, slow: f64) -> bool {
    prev_fast < prev_slow && fast > slow
}

/// True when `fast` crossed below `slow` on this bar:
/// `prev_fast > prev_slow && fast < slow` (both strict; any NaN gives false).
#[must_use]
#[inline]
pub fn crossed_below(prev_fast: f64, prev_slow: f64, fast: f64, slow: f64) -> bool {
    prev_fast > prev_slow && fast < slow
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Deterministic pseudo-random walk with non-dyadic values (xorshift64).
    fn series(len: usize, seed: u64) -> Vec<f64> {
        let mut s = seed;
        let mut price = 100.0;
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
            price += (u - 0.5) * 3.7;
            out.push(price);
        }
        out
    }

    /// (high, low, close) bars around `series`.
    fn bars(len: usize, seed: u64) -> Vec<(f64, f64, f64)> {
        let closes = series(len, seed);
        let a = series(len, seed ^ 0x9e37_79b9_7f4a_7c15);
        let b = series(len, seed.wrapping_mul(31).wrapping_add(7));
        closes
            .iter()
            .zip(a.iter().zip(b.iter()))
            .map(|(&c, (&x, &y))| {
                let up = (x - 100.0).abs() * 0.1 + 0.01;
                let down = (y - 100.0).abs() * 0.1 + 0.01;
                (c + up, c - down, c)
            })
            .collect()
    }

    fn bits(v: &[Option<f64>]) -> Vec<Option<u64>> {
        v.iter().map(|o| o.map(f64::to_bits)).collect()
    }

    fn assert_bits_eq(got: &[Option<f64>], want: &[Option<f64>]) {
        assert_eq!(bits(got), bits(want), "got {got:?}\nwant {want:?}");
    }

    fn assert_close(got: f64, want: f64, rel: f64) {
        let tol = rel * want.abs().max(1.0);
        assert!((got - want).abs() <= tol, "got {got}, want {want}");
    }

    // ---------------------------------------------------------------- EMA

    /// Independent batch EMA: plain loop, same float form.
    fn batch_ema(xs: &[f64], n: usize) -> Vec<f64> {
        let alpha = 2.0 / (n as f64 + 1.0);
        let mut out: Vec<f64> = Vec::with_capacity(xs.len());
        for (i, &x) in xs.iter().enumerate() {
            if i == 0 {
                out.push(x);
            } else {
                let prev = out[i - 1];
                out.push(alpha * x + (1.0 - alpha) * prev);
            }
        }
        out
    }

    #[test]
    fn ema_by_hand() {
        // EMA(3): alpha = 2/4 = 0.5.
        // [1, 2, 3] -> 1; 0.5*2 + 0.5*1 = 1.5; 0.5*3 + 0.5*1.5 = 2.25.
        let mut e = Ema::new(3);
        assert_eq!(e.value(), None);
        assert!(!e.is_ready());
        assert_eq!(e.alpha(), 0.5);
        assert_eq!(e.update(1.0), Some(1.0));
        assert!(e.is_ready());
        assert_eq!(e.update(2.0), Some(1.5));
        assert_eq!(e.update(3.0), Some(2.25));
        assert_eq!(e.value(), Some(2.25));
    }

    #[test]
    fn ema_matches_batch_bitwise() {
        for &n in &[1, 2, 3, 5, 12, 26, 50] {
            let xs = series(300, 42 + n as u64);
            let mut e = Ema::new(n);
            let got: Vec<Option<f64>> = xs.iter().map(|&x| e.update(x)).collect();
            let want: Vec<Option<f64>> = batch_ema(&xs, n).into_iter().map(Some).collect();
            assert_bits_eq(&got, &want);
        }
    }

    #[test]
    fn ema_period_zero_is_one() {
        // Period 1: alpha = 2/2 = 1, so ema = 1*x + 0*ema = x.
        let mut e = Ema::new(0);
        assert_eq!(e.period(), 1);
        assert_eq!(e.alpha(), 1.0);
        for &x in &[3.5, -1.25, 7.0] {
            assert_eq!(e.update(x), Some(x));
        }
    }

    // ---------------------------------------------------------------- SMA

    /// Independent batch SMA: slice each window and sum it with a loop.
    fn batch_sma(xs: &[f64], n: usize) -> Vec<Option<f64>> {
        (0..xs.len())
            .map(|i| {
                if i + 1 < n {
                    return None;
                }
                let mut s = 0.0;
                for &v in &xs[i + 1 - n..=i] {
                    s += v;
                }
                Some(s / n as f64)
            })
            .collect()
    }

    #[test]
    fn sma_by_hand() {
        // SMA(3) of [1, 2, 4, 8, 16]:
        // None, None, (1+2+4)/3 = 7/3, (2+4+8)/3 = 14/3, (4+8+16)/3 = 28/3.
        let mut s = Sma::new(3);
        assert_eq!(s.update(1.0), None);
        assert_eq!(s.update(2.0), None);
        assert!(!s.is_ready());
        assert_eq!(s.value(), None);
        assert_eq!(s.update(4.0), Some(7.0 / 3.0));
        assert!(s.is_ready());
        assert_eq!(s.update(8.0), Some(14.0 / 3.0));
        assert_eq!(s.update(16.0), Some(28.0 / 3.0));
        assert_eq!(s.value(), Some(28.0 / 3.0));
    }

    #[test]
    fn sma_matches_batch_bitwise() {
        for &n in &[1, 2, 3, 7, 20, 64] {
            let xs = series(250, 7 * n as u64 + 1);
            let mut s = Sma::new(n);
            let got: Vec<Option<f64>> = xs.iter().map(|&x| s.update(x)).collect();
            assert_bits_eq(&got, &batch_sma(&xs, n));
        }
    }

    #[test]
    fn sma_close_to_running_sum() {
        // A running sum (add new, subtract old) is ordered differently and
        // drifts by rounding, so only a tight tolerance applies here.
        let n = 10;
        let xs = series(500, 99);
        let mut s = Sma::new(n);
        let mut running = 0.0;
        for (i, &x) in xs.iter().enumerate() {
            running += x;
            if i >= n {
                running -= xs[i - n];
            }
            let got = s.update(x);
            if i + 1 >= n {
                assert_close(got.unwrap(), running / n as f64, 1e-12);
            } else {
                assert_eq!(got, None);
            }
        }
    }

    #[test]
    fn sma_period_zero_is_one() {
        let mut s = Sma::new(0);
        assert_eq!(s.period(), 1);
        assert_eq!(s.update(2.5), Some(2.5));
        assert_eq!(s.update(-4.0), Some(-4.0));
    }

    // ---------------------------------------------------------------- RSI

    /// Independent batch Wilder RSI over a whole price vector.
    fn batch_rsi(xs: &[f64], n: usize) -> Vec<Option<f64>> {
        let mut out = vec![None; xs.len()];
        if xs.len() < n + 1 {
            return out;
        }
        let gains: Vec<f64> = xs.windows(2).map(|w| (w[1] - w[0]).max(0.0)).collect();
        let losses: Vec<f64> = xs.windows(2).map(|w| (w[0] - w[1]).max(0.0)).collect();
        let rsi = |g: f64, l: f64| {
            if l == 0.0 {
                if g == 0.0 {
                    50.0
                } else {
                    100.0
                }
            } else {
                100.0 - 100.0 / (1.0 + g / l)
            }
        };
        let (mut g, mut l) = (0.0, 0.0);
        for j in 0..n {
            g += gains[j];
            l += losses[j];
        }
        g /= n as f64;
        l /= n as f64;
        out[n] = Some(rsi(g, l));
        for j in n..gains.len() {
            g = (g * (n - 1) as f64 + gains[j]) / n as f64;
            l = (l * (n - 1) as f64 + losses[j]) / n as f64;
            out[j + 1] = Some(rsi(g, l));
        }
        out
    }

    #[test]
    fn rsi_by_hand() {
        // RSI(2) of [1, 2, 1.5, 2.5]: changes +1, -0.5, +1.
        // First averages (3rd price): gain (1+0)/2 = 0.5, loss (0+0.5)/2 = 0.25,
        //   RS = 2, RSI = 100 - 100/3.
        // Next: gain (0.5*1 + 1)/2 = 0.75, loss (0.25*1 + 0)/2 = 0.125,
        //   RS = 6, RSI = 100 - 100/7.
        let mut r = Rsi::new(2);
        assert_eq!(r.update(1.0), None);
        assert_eq!(r.update(2.0), None);
        assert!(!r.is_ready());
        assert_eq!(r.value(), None);
        assert_eq!(r.update(1.5), Some(100.0 - 100.0 / 3.0));
        assert!(r.is_ready());
        assert_eq!(r.update(2.5), Some(100.0 - 100.0 / 7.0));
        assert_eq!(r.value(), Some(100.0 - 100.0 / 7.0));
    }

    #[test]
    fn rsi_matches_batch_bitwise() {
        for &n in &[1, 2, 3, 14, 30] {
            let xs = series(300, 1000 + n as u64);
            let mut r = Rsi::new(n);
            let got: Vec<Option<f64>> = xs.iter().map(|&x| r.update(x)).collect();
            assert_bits_eq(&got, &batch_rsi(&xs, n));
            assert_eq!(got.iter().take_while(|v| v.is_none()).count(), n);
        }
    }

    #[test]
    fn rsi_close_to_incremental_smoothing_form() {
        // The algebraically equal form avg += (cur - avg) / n rounds
        // differently, so only a tight tolerance applies.
        let n = 14;
        let xs = series(400, 5);
        let want = batch_rsi(&xs, n);
        let (mut g, mut l) = (0.0, 0.0);
        for i in 1..xs.len() {
            let d = xs[i] - xs[i - 1];
            let (gain, loss) = (d.max(0.0), (-d).max(0.0));
            if i <= n {
                g += gain / n as f64;
                l += loss / n as f64;
            } else {
                g += (gain - g) / n as f64;
                l += (loss - l) / n as f64;
            }
            if i >= n {
                let rsi = 100.0 - 100.0 / (1.0 + g / l);
                assert_close(rsi, want[i].unwrap(), 1e-9);
            }
        }
    }

    #[test]
    fn rsi_extremes() {
        let mut up = Rsi::new(3);
        let mut down = Rsi::new(3);
        let mut flat = Rsi::new(3);
        for i in 0..20 {
            let x = 10.0 + i as f64 * 0.3;
            let u = up.update(x);
            let d = down.update(-x);
            let f = flat.update(4.0);
            if i < 3 {
                assert_eq!((u, d, f), (None, None, None));
            } else {
                assert_eq!(u, Some(100.0));
                assert_eq!(d, Some(0.0));
                assert_eq!(f, Some(50.0));
            }
        }
    }

    #[test]
    fn rsi_period_zero_is_one() {
        // Period 1: ready on the 2nd price, RSI is 100 up, 0 down, 50 flat.
        let mut r = Rsi::new(0);
        assert_eq!(r.period(), 1);
        assert_eq!(r.update(5.0), None);
        assert_eq!(r.update(6.0), Some(100.0));
        assert_eq!(r.update(4.0), Some(0.0));
        assert_eq!(r.update(4.0), Some(50.0));
    }

    // ---------------------------------------------------------------- ATR

    /// Independent batch Wilder ATR.
    fn batch_atr(bars: &[(f64, f64, f64)], n: usize) -> Vec<Option<f64>> {
        let mut trs = Vec::with_capacity(bars.len());
        for (i, &(h, l, _)) in bars.iter().enumerate() {
            if i == 0 {
                trs.push(h - l);
            } else {
                let pc = bars[i - 1].2;
                let mut tr = h - l;
                if (h - pc).abs() > tr {
                    tr = (h - pc).abs();
                }
                if (l - pc).abs() > tr {
                    tr = (l - pc).abs();
                }
                trs.push(tr);
            }
        }
        let mut out = vec![None; bars.len()];
        if bars.len() < n {
            return out;
        }
        let mut atr = 0.0;
        for &tr in &trs[..n] {
            atr += tr;
        }
        atr /= n as f64;
        out[n - 1] = Some(atr);
        for i in n..trs.len() {
            atr = (atr * (n - 1) as f64 + trs[i]) / n as f64;
            out[i] = Some(atr);
        }
        out
    }

    #[test]
    fn atr_by_hand() {
        // ATR(2):
        // (10, 8, 9):   first bar, TR = 10-8 = 2                       -> None
        // (11, 9, 10):  TR = max(2, |11-9| = 2, |9-9| = 0) = 2,
        //               ATR = (2+2)/2 = 2
        // (13, 10, 12): TR = max(3, |13-10| = 3, |10-10| = 0) = 3,
        //               ATR = (2*1 + 3)/2 = 2.5
        // (9, 8, 8.5):  gap down, TR = max(1, |9-12| = 3, |8-12| = 4) = 4,
        //               ATR = (2.5*1 + 4)/2 = 3.25
        let mut a = Atr::new(2);
        assert_eq!(a.update(10.0, 8.0, 9.0), None);
        assert!(!a.is_ready());
        assert_eq!(a.value(), None);
        assert_eq!(a.update(11.0, 9.0, 10.0), Some(2.0));
        assert!(a.is_ready());
        assert_eq!(a.update(13.0, 10.0, 12.0), Some(2.5));
        assert_eq!(a.update(9.0, 8.0, 8.5), Some(3.25));
        assert_eq!(a.value(), Some(3.25));
    }

    #[test]
    fn atr_matches_batch_bitwise() {
        for &n in &[1, 2, 5, 14, 40] {
            let bs = bars(300, 77 + n as u64);
            let mut a = Atr::new(n);
            let got: Vec<Option<f64>> = bs.iter().map(|&(h, l, c)| a.update(h, l, c)).collect();
            assert_bits_eq(&got, &batch_atr(&bs, n));
            assert_eq!(got.iter().take_while(|v| v.is_none()).count(), n - 1);
        }
    }

    #[test]
    fn atr_period_zero_is_one() {
        // Period 1: ATR is the true range of each bar.
        let mut a = Atr::new(0);
        assert_eq!(a.period(), 1);
        assert_eq!(a.update(10.0, 8.0, 9.0), Some(2.0)); // 10-8
        assert_eq!(a.update(12.0, 11.0, 11.5), Some(3.0)); // |12-9|
    }

    // ---------------------------------------------------------- Bollinger

    /// Independent batch Bollinger bands: two passes over each slice.
    fn batch_bollinger(xs: &[f64], n: usize, k: f64) -> Vec<Option<Bands>> {
        (0..xs.len())
            .map(|i| {
                if i + 1 < n {
                    return None;
                }
                let w = &xs[i + 1 - n..=i];
                let mut s = 0.0;
                for &v in w {
                    s += v;
                }
                let mean = s / n as f64;
                let mut ss = 0.0;
                for &v in w {
                    ss += (v - mean) * (v - mean);
                }
                let sd = (ss / n as f64).sqrt();
                Some(Bands {
                    upper: mean + k * sd,
                    middle: mean,
                    lower: mean - k * sd,
                })
            })
            .collect()
    }

    fn band_bits(b: &[Option<Bands>]) -> Vec<Option<[u64; 3]>> {
        b.iter()
            .map(|o| o.map(|b| [b.upper.to_bits(), b.middle.to_bits(), b.lower.to_bits()]))
            .collect()
    }

    #[test]
    fn bollinger_by_hand() {
        // n = 8, k = 2 over [2, 4, 4, 4, 5, 5, 7, 9]:
        // sum 40, mean 5; squared deviations 9+1+1+1+0+0+4+16 = 32,
        // var 32/8 = 4, std 2; upper 5 + 2*2 = 9, lower 5 - 2*2 = 1.
        let xs = [2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0];
        let mut bb = BollingerBands::new(8, 2.0);
        for &x in &xs[..7] {
            assert_eq!(bb.update(x), None);
            assert!(!bb.is_ready());
        }
        let want = Bands {
            upper: 9.0,
            middle: 5.0,
            lower: 1.0,
        };
        assert_eq!(bb.update(xs[7]), Some(want));
        assert!(bb.is_ready());
        assert_eq!(bb.value(), Some(want));
        // Slide by one: [4, 4, 4, 5, 5, 7, 9, 4], sum 42, mean 5.25.
        let b = bb.update(4.0).unwrap();
        assert_eq!(b.middle, 5.25);
    }

    #[test]
    fn bollinger_matches_batch_bitwise() {
        for &(n, k) in &[(1, 2.0), (2, 1.5), (5, 2.0), (20, 2.0), (33, 2.5)] {
            let xs = series(250, 3 + n as u64);
            let mut bb = BollingerBands::new(n, k);
            let got: Vec<Option<Bands>> = xs.iter().map(|&x| bb.update(x)).collect();
            assert_eq!(band_bits(&got), band_bits(&batch_bollinger(&xs, n, k)));
            // The middle band is exactly the SMA.
            let mut s = Sma::new(n);
            for (g, &x) in got.iter().zip(&xs) {
                assert_eq!(g.map(|b| b.middle.to_bits()), s.update(x).map(f64::to_bits));
            }
        }
    }

    #[test]
    fn bollinger_period_zero_is_one() {
        // Period 1: std 0, all three bands equal the value.
        let mut bb = BollingerBands::new(0, 2.0);
        assert_eq!(bb.period(), 1);
        assert_eq!(bb.k(), 2.0);
        let b = bb.update(3.25).unwrap();
        assert_eq!((b.upper, b.middle, b.lower), (3.25, 3.25, 3.25));
    }

    // --------------------------------------------------------------- MACD

    #[test]
    fn macd_by_hand() {
        // MACD(1, 3, 3) of [1, 2, 3]:
        // fast EMA(1) (alpha 1): 1, 2, 3
        // slow EMA(3) (alpha .5): 1, 1.5, 2.25
        // macd: 0, 0.5, 0.75
        // signal EMA(3) of macd: 0, 0.5*0.5 + 0.5*0 = 0.25, 0.5*0.75 + 0.5*0.25 = 0.5
        // histogram: 0, 0.25, 0.25
        let mut m = Macd::new(1, 3, 3);
        assert_eq!(m.value(), None);
        assert!(!m.is_ready());
        let v = |macd, signal, histogram| {
            Some(MacdValue {
                macd,
                signal,
                histogram,
            })
        };
        assert_eq!(m.update(1.0), v(0.0, 0.0, 0.0));
        assert!(m.is_ready());
        assert_eq!(m.update(2.0), v(0.5, 0.25, 0.25));
        assert_eq!(m.update(3.0), v(0.75, 0.5, 0.25));
        assert_eq!(m.value(), v(0.75, 0.5, 0.25));
    }

    #[test]
    fn macd_matches_batch_bitwise() {
        let (f, s, g) = Macd::default_periods();
        assert_eq!((f, s, g), (12, 26, 9));
        for &(f, s, g) in &[(f, s, g), (3, 10, 16), (1, 2, 1)] {
            let xs = series(300, 11 + s as u64);
            let fast = batch_ema(&xs, f);
            let slow = batch_ema(&xs, s);
            let macd: Vec<f64> = fast.iter().zip(&slow).map(|(a, b)| a - b).collect();
            let signal = batch_ema(&macd, g);
            let mut m = Macd::new(f, s, g);
            for i in 0..xs.len() {
                let got = m.update(xs[i]).unwrap();
                assert_eq!(got.macd.to_bits(), macd[i].to_bits());
                assert_eq!(got.signal.to_bits(), signal[i].to_bits());
                assert_eq!(got.histogram.to_bits(), (macd[i] - signal[i]).to_bits());
            }
        }
    }

    #[test]
    fn macd_period_zero_is_one() {
        // All periods 1: fast = slow = x, so macd = signal = histogram = 0.
        let mut m = Macd::new(0, 0, 0);
        assert_eq!(m.periods(), (1, 1, 1));
        for &x in &[1.0, 5.0, -2.0] {
            let v = m.update(x).unwrap();
            assert_eq!((v.macd, v.signal, v.histogram), (0.0, 0.0, 0.0));
        }
    }

    // ------------------------------------------------------------ crosses

    #[test]
    fn crosses() {
        assert!(crossed_above(1.0, 2.0, 3.0, 2.0));
        assert!(!crossed_above(2.0, 2.0, 3.0, 2.0)); // started equal
        assert!(!crossed_above(1.0, 2.0, 2.0, 2.0)); // touched only
        assert!(!crossed_above(3.0, 2.0, 4.0, 2.0)); // already above
        assert!(!crossed_above(f64::NAN, 2.0, 3.0, 2.0));
        assert!(crossed_below(3.0, 2.0, 1.0, 2.0));
        assert!(!crossed_below(2.0, 2.0, 1.0, 2.0));
        assert!(!crossed_below(3.0, 2.0, 2.0, 2.0));
        assert!(!crossed_below(1.0, 2.0, 0.0, 2.0));
        assert!(!crossed_below(3.0, 2.0, 1.0, f64::NAN));
    }

    // ------------------------------------------------------------ windows

    #[test]
    fn window_order_and_huge_period() {
        let mut w = Window::new(3);
        for x in [1.0, 2.0, 3.0, 4.0, 5.0] {
            w.push(x);
        }
        assert_eq!(w.iter().collect::<Vec<_>>(), vec![3.0, 4.0, 5.0]);
        // An impossible period must not abort in `new`.
        let mut s = Sma::new(usize::MAX);
        assert_eq!(s.update(1.0), None);
        let mut bb = BollingerBands::new(usize::MAX / 2, 2.0);
        assert_eq!(bb.update(1.0), None);
    }
}
