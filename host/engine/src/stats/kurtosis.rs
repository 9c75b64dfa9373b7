//! Kurtosis of per-bar returns.

use super::{finite, ReturnMoments};

/// The (population, not excess) kurtosis of per-bar returns:
///
/// ```text
/// mean     = Σ r[i] / n
/// kurtosis = (Σ (r[i] - mean)⁴ / n) / (Σ (r[i] - mean)² / n)²
/// ```
///
/// 3 for normal returns; above 3 means fat tails. It enters the deflated
/// Sharpe ratio ([`DeflatedSharpe`](super::DeflatedSharpe)) in this form.
///
/// Undefined (`None`): fewer than 2 returns, all returns equal, or a
/// non-finite result.
pub struct ReturnKurtosis;

impl ReturnKurtosis {
    /// See [`ReturnKurtosis`].
    pub fn compute(returns: &[f64]) -> Option<f64> {
        Self::from_moments(&ReturnMoments::from_returns(returns))
    }

    /// The same from sums gathered once for several statistics.
    pub fn from_moments(m: &ReturnMoments) -> Option<f64> {
        if m.n < 2 || m.all_equal || m.deviation_squares <= 0.0 {
            return None;
        }
        let n = m.n as f64;
        let variance = m.deviation_squares / n;
        finite(m.deviation_fourths / n / (variance * variance))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_close_some;
    use super::*;

    #[test]
    fn kurtosis_by_hand() {
        // [0.1, -0.1, 0.3, 0.1]: deviations 0, -0.2, 0.2, 0
        // Σ d² = 0.08, Σ d⁴ = 2 × 0.0016 = 0.0032
        // (0.0032 / 4) / (0.08 / 4)² = 0.0008 / 0.0004 = 2
        assert_close_some(ReturnKurtosis::compute(&[0.1, -0.1, 0.3, 0.1]), 2.0);
        // [0, 0, 0, 0.4]: Σ d² = 0.12, Σ d⁴ = 3 × 0.0001 + 0.0081 = 0.0084
        // (0.0084 / 4) / 0.03² = 0.0021 / 0.0009 = 7 / 3
        assert_close_some(ReturnKurtosis::compute(&[0.0, 0.0, 0.0, 0.4]), 7.0 / 3.0);
        assert_eq!(ReturnKurtosis::compute(&[0.2, 0.2, 0.2]), None);
    }

    #[test]
    fn far_from_zero_returns_keep_their_shape() {
        // Shifted by 1000: the same deviations, the same kurtosis (the
        // shifted sums do not cancel catastrophically).
        let shifted: Vec<f64> = [0.1, -0.1, 0.3, 0.1].iter().map(|r| r + 1000.0).collect();
        let k = ReturnKurtosis::compute(&shifted).unwrap();
        assert!((k - 2.0).abs() < 1e-6, "{k}");
    }
}
