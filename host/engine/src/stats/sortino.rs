//! Sortino ratio.

use super::{finite, valid_periods_per_year, ReturnMoments};

/// Annualised Sortino ratio of per-bar returns, with a target (minimum
/// acceptable) return of 0.
///
/// ```text
/// mean                = Σ r[i] / n
/// downside_deviation  = sqrt( Σ min(r[i], 0)² / n )
/// sortino             = mean / downside_deviation × sqrt(periods_per_year)
/// ```
///
/// The downside deviation divides by `n`, the count of **all** returns, not
/// only the negative ones (positive returns contribute 0 to the sum). Inputs
/// and units are those of [`SharpeRatio`](super::SharpeRatio); sums run in
/// index order.
///
/// Undefined (`None`):
/// - fewer than 2 returns;
/// - `downside_deviation == 0`: no negative return (or negative returns so
///   small their squares underflow to 0);
/// - `periods_per_year` not finite and positive;
/// - a non-finite result (non-finite input).
pub struct SortinoRatio;

impl SortinoRatio {
    /// See [`SortinoRatio`].
    pub fn compute(returns: &[f64], periods_per_year: f64) -> Option<f64> {
        Self::from_moments(&ReturnMoments::from_returns(returns), periods_per_year)
    }

    /// The same from sums gathered once for several statistics.
    pub fn from_moments(m: &ReturnMoments, periods_per_year: f64) -> Option<f64> {
        if m.n < 2 || !valid_periods_per_year(periods_per_year) {
            return None;
        }
        let mean = m.mean()?;
        let downside_deviation = (m.downside_squares / m.n as f64).sqrt();
        if downside_deviation == 0.0 {
            return None;
        }
        finite(mean / downside_deviation * periods_per_year.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_close_some;
    use super::*;

    #[test]
    fn sortino_by_hand() {
        // r = [0.1, -0.1, 0.3, 0.1], n = 4
        // mean = 0.4 / 4 = 0.1
        // min(r, 0)² = 0, 0.01, 0, 0 -> 0.01; / 4 = 0.0025; sqrt = 0.05
        // 0.1 / 0.05 = 2; × sqrt(4) = 4
        assert_close_some(SortinoRatio::compute(&[0.1, -0.1, 0.3, 0.1], 4.0), 4.0);
    }

    #[test]
    fn sortino_divides_by_all_returns() {
        // r = [-0.02, 0.04, -0.04, 0.06], n = 4
        // mean = 0.04 / 4 = 0.01
        // min(r, 0)² = 0.0004 + 0 + 0.0016 + 0 = 0.002; / 4 (not / 2)
        //   = 0.0005; sqrt = 0.022360679...
        // 0.01 / sqrt(0.0005) = sqrt(1e-4 / 5e-4) = sqrt(0.2)
        // × sqrt(20) = sqrt(4) = 2
        assert_close_some(
            SortinoRatio::compute(&[-0.02, 0.04, -0.04, 0.06], 20.0),
            2.0,
        );
    }

    #[test]
    fn sortino_negative_mean() {
        // r = [-0.1, -0.1]: mean -0.1; (0.01 + 0.01) / 2 = 0.01; sqrt 0.1
        // -0.1 / 0.1 = -1; × sqrt(1) = -1 (each step exact after rounding:
        // 0.1 × 0.1 rounds, but the sqrt of the rounded 0.01 is 0.1 again)
        assert_close_some(SortinoRatio::compute(&[-0.1, -0.1], 1.0), -1.0);
    }

    #[test]
    fn sortino_undefined_cases() {
        // too few returns
        assert_eq!(SortinoRatio::compute(&[], 365.0), None);
        assert_eq!(SortinoRatio::compute(&[-0.05], 365.0), None);
        // no negative return
        assert_eq!(SortinoRatio::compute(&[0.1, 0.0, 0.2], 365.0), None);
        assert_eq!(SortinoRatio::compute(&[0.0, 0.0], 365.0), None);
        // invalid periods per year
        assert_eq!(SortinoRatio::compute(&[0.1, -0.1], 0.0), None);
        assert_eq!(SortinoRatio::compute(&[0.1, -0.1], f64::NAN), None);
        // non-finite input
        assert_eq!(SortinoRatio::compute(&[-0.1, f64::NAN], 365.0), None);
        assert_eq!(SortinoRatio::compute(&[-0.1, f64::INFINITY], 365.0), None);
    }
}
