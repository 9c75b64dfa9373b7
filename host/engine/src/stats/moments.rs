//! The sums Sharpe and Sortino are built from, gathered in one pass
//! without materialising the return series.

/// Sums over per-bar returns, each in index order:
///
/// ```text
/// n                 = number of returns
/// sum               = Σ r[i]
/// downside_squares  = Σ min(r[i], 0)²
/// deviation_squares = Σ (r[i] - mean)²
///                   = Σ (r[i] - r[0])² - (Σ (r[i] - r[0]))² / n
/// deviation_cubes   = Σ (r[i] - mean)³,  deviation_fourths = Σ (r[i] - mean)⁴
///                     (from the shifted sums: with d = r - r[0], m = Σ d / n,
///                      Σ d³ - 3 m Σ d² + 2 n m³ and
///                      Σ d⁴ - 4 m Σ d³ + 6 m² Σ d² - 3 n m⁴)
/// all_equal         = every r[i] equal to r[0]
/// ```
///
/// `deviation_squares` uses sums shifted by the first return, so it needs
/// one pass and no stored series, yet does not cancel catastrophically the
/// way `Σ r² - (Σ r)² / n` does when returns sit far from zero: the shift
/// brings them near zero first. It is clamped at 0 against rounding. A
/// constant series gives exactly 0 (every shifted term is 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReturnMoments {
    pub n: usize,
    pub sum: f64,
    pub downside_squares: f64,
    pub deviation_squares: f64,
    pub deviation_cubes: f64,
    pub deviation_fourths: f64,
    pub all_equal: bool,
}

/// Gathers [`ReturnMoments`] one return at a time. The sums are
/// independent chains, so the CPU overlaps their additions.
#[derive(Debug, Clone, Copy)]
pub struct MomentsAccumulator {
    n: usize,
    sum: f64,
    downside_squares: f64,
    first: f64,
    shifted_sum: f64,
    shifted_squares: f64,
    shifted_cubes: f64,
    shifted_fourths: f64,
    all_equal: bool,
}

impl Default for MomentsAccumulator {
    fn default() -> Self {
        Self {
            n: 0,
            sum: 0.0,
            downside_squares: 0.0,
            first: 0.0,
            shifted_sum: 0.0,
            shifted_squares: 0.0,
            shifted_cubes: 0.0,
            shifted_fourths: 0.0,
            all_equal: true,
        }
    }
}

impl MomentsAccumulator {
    #[inline]
    pub fn push(&mut self, x: f64) {
        if self.n == 0 {
            self.first = x;
        }
        self.n += 1;
        self.sum += x;
        let downside = x.min(0.0);
        self.downside_squares += downside * downside;
        self.all_equal &= x == self.first;
        let shifted = x - self.first;
        self.shifted_sum += shifted;
        let square = shifted * shifted;
        self.shifted_squares += square;
        self.shifted_cubes += square * shifted;
        self.shifted_fourths += square * square;
    }

    /// `count` returns of exactly `+0.0`: a flat stretch. Bit-identical
    /// to `count` calls of `push(0.0)`: after the first, adding `+0.0`
    /// changes no sum (`-0.0` became `+0.0` on the first), and when the
    /// first return is a zero the shifted terms are `+0.0` too, so only
    /// the count moves. Otherwise it pushes them one by one.
    pub fn push_zeros(&mut self, count: usize) {
        if count == 0 {
            return;
        }
        self.push(0.0);
        if self.first == 0.0 {
            self.n += count - 1;
        } else {
            for _ in 1..count {
                self.push(0.0);
            }
        }
    }

    pub fn finish(&self) -> ReturnMoments {
        let deviation_squares = if self.n == 0 {
            0.0
        } else {
            let correction = self.shifted_sum * self.shifted_sum / self.n as f64;
            let squares = self.shifted_squares - correction;
            // NaN (a non-finite return) must reach the ratios, which then
            // report nothing; only rounding below 0 is clamped.
            if squares < 0.0 {
                0.0
            } else {
                squares
            }
        };
        let (deviation_cubes, deviation_fourths) = if self.n == 0 {
            (0.0, 0.0)
        } else {
            let n = self.n as f64;
            let m = self.shifted_sum / n;
            let (s2, s3, s4) = (
                self.shifted_squares,
                self.shifted_cubes,
                self.shifted_fourths,
            );
            let cubes = s3 - 3.0 * m * s2 + 2.0 * n * m * m * m;
            let fourths = s4 - 4.0 * m * s3 + 6.0 * m * m * s2 - 3.0 * n * m * m * m * m;
            // A sum of fourth powers is never negative but for rounding.
            (cubes, if fourths < 0.0 { 0.0 } else { fourths })
        };
        ReturnMoments {
            n: self.n,
            sum: self.sum,
            downside_squares: self.downside_squares,
            deviation_squares,
            deviation_cubes,
            deviation_fourths,
            all_equal: self.all_equal,
        }
    }
}

impl ReturnMoments {
    /// From per-bar returns ([`bar_returns`](super::bar_returns)).
    pub fn from_returns(returns: &[f64]) -> Self {
        let mut acc = MomentsAccumulator::default();
        for &x in returns {
            acc.push(x);
        }
        acc.finish()
    }

    /// `sum / n`, `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::bar_returns;

    #[test]
    fn sums_of_a_hand_computed_series() {
        // Equity 10000 -> 11000 -> 9900 -> 9900: returns 0.1, -0.1, 0.
        let m = ReturnMoments::from_returns(&bar_returns(10_000.0, &[11_000.0, 9_900.0, 9_900.0]));
        assert_eq!(m.n, 3);
        // 0.1 + -0.1 + 0 = 0; downside: 0.01.
        assert!((m.sum).abs() < 1e-15);
        assert!((m.downside_squares - 0.01).abs() < 1e-15);
        // mean 0: deviations 0.1, -0.1, 0 -> 0.02.
        assert!((m.deviation_squares - 0.02).abs() < 1e-15);
        assert!(!m.all_equal);
    }

    /// The one-pass deviation against the textbook two-pass form, on
    /// returns far from zero with tiny spread, where `Σ r² - (Σ r)² / n`
    /// would lose every digit.
    #[test]
    fn shifted_sums_match_two_pass_variance() {
        let returns: Vec<f64> = (0..10_000)
            .map(|i| 0.5 + 1e-9 * ((i * 7_919 % 1_000) as f64 - 500.0))
            .collect();
        let mean = returns.iter().sum::<f64>() / returns.len() as f64;
        let two_pass: f64 = returns.iter().map(|r| (r - mean) * (r - mean)).sum();
        let one_pass = ReturnMoments::from_returns(&returns).deviation_squares;
        assert!(
            ((one_pass - two_pass) / two_pass).abs() < 1e-9,
            "{one_pass} vs {two_pass}"
        );
        let naive = returns.iter().map(|r| r * r).sum::<f64>()
            - returns.iter().sum::<f64>().powi(2) / returns.len() as f64;
        assert!(
            ((naive - two_pass) / two_pass).abs() > 1e-6,
            "the case must be hard"
        );
    }

    #[test]
    fn constant_series_is_flagged_and_empty_has_no_mean() {
        let m = ReturnMoments::from_returns(&[0.1, 0.1, 0.1]);
        assert!(m.all_equal);
        assert_eq!(m.deviation_squares, 0.0);
        assert_eq!(ReturnMoments::from_returns(&[]).mean(), None);
    }

    #[test]
    fn push_zeros_equals_pushing_each_zero() {
        let starts: [&[f64]; 5] = [&[], &[0.0], &[-0.0, 0.01], &[0.02, -0.01], &[f64::NAN]];
        for start in starts {
            for count in [0, 1, 2, 1_000] {
                let (mut one_by_one, mut collapsed) =
                    (MomentsAccumulator::default(), MomentsAccumulator::default());
                for &x in start {
                    one_by_one.push(x);
                    collapsed.push(x);
                }
                for _ in 0..count {
                    one_by_one.push(0.0);
                }
                collapsed.push_zeros(count);
                let (a, b) = (one_by_one.finish(), collapsed.finish());
                assert_eq!(a.n, b.n);
                assert_eq!(a.all_equal, b.all_equal);
                for (x, y) in [
                    (a.sum, b.sum),
                    (a.downside_squares, b.downside_squares),
                    (a.deviation_squares, b.deviation_squares),
                ] {
                    assert_eq!(x.to_bits(), y.to_bits(), "{start:?} then {count} zeros");
                }
            }
        }
    }
}
