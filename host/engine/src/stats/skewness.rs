//! Skewness of per-bar returns.

use super::{finite, ReturnMoments};

/// The (population) skewness of per-bar returns:
///
/// ```text
/// mean     = Σ r[i] / n
/// skewness = (Σ (r[i] - mean)³ / n) / (Σ (r[i] - mean)² / n)^(3/2)
/// ```
///
/// 0 for a symmetric series; negative when losses come as rare large
/// falls. It enters the deflated Sharpe ratio
/// ([`DeflatedSharpe`](super::DeflatedSharpe)), which is why it is the
/// population form of Bailey and López de Prado rather than a sample one.
///
/// Undefined (`None`): fewer than 2 returns, all returns equal, or a
/// non-finite result.
pub struct ReturnSkewness;

impl ReturnSkewness {
    /// See [`ReturnSkewness`].
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
        finite(m.deviation_cubes / n / (variance * variance.sqrt()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_close_some;
    use super::*;

    #[test]
    fn skewness_by_hand() {
        // [0.1, -0.1, 0.3, 0.1]: deviations 0, -0.2, 0.2, 0: Σ d³ = 0 -> 0
        assert!(
            ReturnSkewness::compute(&[0.1, -0.1, 0.3, 0.1])
                .unwrap()
                .abs()
                < 1e-12
        );
        // [0, 0, 0, 0.4]: mean 0.1, deviations -0.1 ×3, 0.3
        // Σ d² = 0.03 + 0.09 = 0.12, Σ d³ = -0.003 + 0.027 = 0.024
        // (0.024 / 4) / (0.12 / 4)^1.5 = 0.006 / 0.03^1.5 = 2 / sqrt(3)
        assert_close_some(
            ReturnSkewness::compute(&[0.0, 0.0, 0.0, 0.4]),
            2.0 / 3f64.sqrt(),
        );
        // Mirrored: the opposite.
        assert_close_some(
            ReturnSkewness::compute(&[0.0, 0.0, 0.0, -0.4]),
            -2.0 / 3f64.sqrt(),
        );
        assert_eq!(ReturnSkewness::compute(&[0.2, 0.2]), None);
        assert_eq!(ReturnSkewness::compute(&[0.2]), None);
    }
}
