//! Sharpe ratio.

use super::{finite, valid_periods_per_year, ReturnMoments};

/// Annualised Sharpe ratio of per-bar returns, with a risk-free rate of 0.
///
/// ```text
/// mean   = Σ r[i] / n
/// std    = sqrt( Σ (r[i] - mean)² / (n - 1) )      (sample, Bessel-corrected)
/// sharpe = mean / std × sqrt(periods_per_year)
/// ```
///
/// `returns` are per-bar fractional returns, normally
/// [`bar_returns`](super::bar_returns), and `periods_per_year` the bars per
/// year from [`periods_per_year`](super::periods_per_year). The ratio has no
/// unit. Annualisation by `sqrt(periods_per_year)` assumes independent
/// returns. Sums run in index order.
///
/// Undefined (`None`):
/// - fewer than 2 returns;
/// - `std == 0`: all returns equal. This is tested exactly (every return
///   bit-equal to the first) as well as on the computed `std`, because
///   rounding in the mean makes the computed `std` of a constant series
///   slightly non-zero (for example `[0.1, 0.1, 0.1]`), which would give an
///   absurd ratio of order 1e16;
/// - `periods_per_year` not finite and positive (as `0.0` from
///   [`periods_per_year`](super::periods_per_year) for an invalid
///   timeframe);
/// - a non-finite result (non-finite input).
pub struct SharpeRatio;

impl SharpeRatio {
    /// See [`SharpeRatio`].
    pub fn compute(returns: &[f64], periods_per_year: f64) -> Option<f64> {
        Self::from_moments(&ReturnMoments::from_returns(returns), periods_per_year)
    }

    /// The same from sums gathered once for several statistics.
    pub fn from_moments(m: &ReturnMoments, periods_per_year: f64) -> Option<f64> {
        if m.n < 2 || !valid_periods_per_year(periods_per_year) || m.all_equal {
            return None;
        }
        let mean = m.mean()?;
        let std = (m.deviation_squares / (m.n - 1) as f64).sqrt();
        if std == 0.0 {
            return None;
        }
        finite(mean / std * periods_per_year.sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_close_some;
    use super::*;

    #[test]
    fn sharpe_by_hand() {
        // r = [0.1, -0.1, 0.3, 0.1], n = 4
        // mean = 0.4 / 4 = 0.1
        // deviations 0, -0.2, 0.2, 0 -> squares 0, 0.04, 0.04, 0 -> 0.08
        // std = sqrt(0.08 / 3)
        // mean / std = 0.1 / sqrt(0.08 / 3) = sqrt(0.01 × 3 / 0.08)
        //            = sqrt(0.375)
        // × sqrt(24): sqrt(0.375 × 24) = sqrt(9) = 3
        assert_close_some(SharpeRatio::compute(&[0.1, -0.1, 0.3, 0.1], 24.0), 3.0);
        // Mirrored returns give the opposite ratio.
        assert_close_some(SharpeRatio::compute(&[-0.1, 0.1, -0.3, -0.1], 24.0), -3.0);
    }

    #[test]
    fn sharpe_daily_by_hand() {
        // r = [0.02, 0, -0.01, 0.03], daily bars: periods_per_year = 365
        // mean = 0.04 / 4 = 0.01
        // deviations 0.01, -0.01, -0.02, 0.02
        // squares 1e-4 + 1e-4 + 4e-4 + 4e-4 = 1e-3
        // std = sqrt(1e-3 / 3)
        // mean / std = sqrt(1e-4 × 3 / 1e-3) = sqrt(0.3)
        // × sqrt(365) = sqrt(109.5) = 10.464224768228174...
        let ppy = super::super::periods_per_year(86_400.0);
        assert_close_some(
            SharpeRatio::compute(&[0.02, 0.0, -0.01, 0.03], ppy),
            109.5_f64.sqrt(),
        );
        assert_close_some(
            SharpeRatio::compute(&[0.02, 0.0, -0.01, 0.03], ppy),
            10.464_224_768_228_174,
        );
    }

    #[test]
    fn sharpe_too_few_returns() {
        assert_eq!(SharpeRatio::compute(&[], 365.0), None);
        assert_eq!(SharpeRatio::compute(&[0.05], 365.0), None);
    }

    #[test]
    fn sharpe_zero_std() {
        assert_eq!(SharpeRatio::compute(&[0.0, 0.0, 0.0], 365.0), None);
        assert_eq!(SharpeRatio::compute(&[0.1, 0.1, 0.1], 365.0), None);
    }

    #[test]
    fn constant_series_has_rounded_nonzero_std() {
        // Why the exact "all equal" test is needed: 0.1 + 0.1 + 0.1 is
        // 0.30000000000000004, so the computed mean is not exactly 0.1 and
        // the deviations, hence the computed std, are tiny but non-zero.
        let mean = super::super::mean(&[0.1, 0.1, 0.1]).unwrap();
        assert_ne!(mean, 0.1);
        let deviation = 0.1 - mean;
        assert!(deviation * deviation > 0.0);
    }

    #[test]
    fn sharpe_invalid_periods_per_year() {
        let r = [0.1, -0.1, 0.3, 0.1];
        assert_eq!(SharpeRatio::compute(&r, 0.0), None);
        assert_eq!(SharpeRatio::compute(&r, -365.0), None);
        assert_eq!(SharpeRatio::compute(&r, f64::NAN), None);
        assert_eq!(SharpeRatio::compute(&r, f64::INFINITY), None);
    }

    #[test]
    fn sharpe_non_finite_input() {
        assert_eq!(SharpeRatio::compute(&[0.1, f64::NAN], 365.0), None);
        assert_eq!(SharpeRatio::compute(&[0.1, f64::INFINITY], 365.0), None);
    }
}
