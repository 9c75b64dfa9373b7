//! Annualised volatility.

use super::{finite, valid_periods_per_year, ReturnMoments};

/// The standard deviation of per-bar returns, annualised, in percent:
///
/// ```text
/// mean = Σ r[i] / n
/// std  = sqrt( Σ (r[i] - mean)² / (n - 1) )      (sample, as Sharpe's)
/// annual_volatility_pct = std × sqrt(periods_per_year) × 100
/// ```
///
/// The same `std` as [`SharpeRatio`](super::SharpeRatio), so
/// `sharpe = annualised mean return / annual volatility`. Annualisation by
/// `sqrt(periods_per_year)` assumes independent returns.
///
/// Undefined (`None`): fewer than 2 returns, `periods_per_year` not finite
/// and positive, or a non-finite result. All returns equal gives `0.0`
/// exactly.
pub struct AnnualVolatility;

impl AnnualVolatility {
    /// See [`AnnualVolatility`].
    pub fn compute(returns: &[f64], periods_per_year: f64) -> Option<f64> {
        Self::from_moments(&ReturnMoments::from_returns(returns), periods_per_year)
    }

    /// The same from sums gathered once for several statistics.
    pub fn from_moments(m: &ReturnMoments, periods_per_year: f64) -> Option<f64> {
        if m.n < 2 || !valid_periods_per_year(periods_per_year) {
            return None;
        }
        if m.all_equal {
            return Some(0.0);
        }
        let std = (m.deviation_squares / (m.n - 1) as f64).sqrt();
        finite(std * periods_per_year.sqrt() * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_close_some;
    use super::*;

    #[test]
    fn volatility_by_hand() {
        // r = [0.1, -0.1, 0.3, 0.1]: mean 0.1, squares 0 + 0.04 + 0.04 + 0
        // std = sqrt(0.08 / 3); × sqrt(24) = sqrt(0.64) = 0.8 -> 80 %
        assert_close_some(
            AnnualVolatility::compute(&[0.1, -0.1, 0.3, 0.1], 24.0),
            80.0,
        );
        assert_eq!(
            AnnualVolatility::compute(&[0.01, 0.01, 0.01], 24.0),
            Some(0.0)
        );
        assert_eq!(AnnualVolatility::compute(&[0.01], 24.0), None);
        assert_eq!(AnnualVolatility::compute(&[0.01, 0.02], 0.0), None);
    }
}
