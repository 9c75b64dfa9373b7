//! Deflated Sharpe ratio.

use super::finite;
use super::normal::{normal_cdf, normal_quantile};

/// Euler-Mascheroni constant.
const EULER_GAMMA: f64 = 0.577_215_664_901_532_9;

/// The deflated Sharpe ratio of Bailey and López de Prado ("The Deflated
/// Sharpe Ratio", 2014): the probability that the strategy chosen as the
/// best of `trials` has a true Sharpe ratio above zero, given how many were
/// tried, how much their Sharpe ratios varied, the length of the track
/// record and its returns' skewness and kurtosis.
///
/// ```text
/// SR₀ = sqrt(V) × ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))
/// DSR = Φ( (SR - SR₀) × sqrt(T - 1) / sqrt(1 - γ₃ SR + (γ₄ - 1)/4 × SR²) )
/// ```
///
/// with `SR` the chosen strategy's Sharpe ratio **per bar** (not
/// annualised: the annualised one over `sqrt(periods_per_year)`), `V` the
/// variance of the trials' per-bar Sharpe ratios, `N` the number of trials,
/// `T` the number of returns, `γ₃` their skewness and `γ₄` their
/// (non-excess) kurtosis, `γ` the Euler-Mascheroni constant and `Φ` the
/// standard normal CDF. `SR₀` is the Sharpe ratio the best of `N`
/// strategies without skill is expected to reach; a DSR near 1 says the
/// winner is unlikely to be luck, near 0.5 or below that it may well be.
///
/// Undefined (`None`): fewer than 2 trials or 2 returns, a negative or
/// non-finite variance, a non-positive term under the last square root,
/// or a non-finite result.
pub struct DeflatedSharpe;

impl DeflatedSharpe {
    /// See [`DeflatedSharpe`].
    pub fn compute(
        sharpe: f64,
        trials_variance: f64,
        trials: usize,
        returns: usize,
        skewness: f64,
        kurtosis: f64,
    ) -> Option<f64> {
        let usable_variance = trials_variance.is_finite() && trials_variance >= 0.0;
        if trials < 2 || returns < 2 || !usable_variance {
            return None;
        }
        let n = trials as f64;
        let expected_max = (1.0 - EULER_GAMMA) * normal_quantile(1.0 - 1.0 / n)?
            + EULER_GAMMA * normal_quantile(1.0 - 1.0 / (n * std::f64::consts::E))?;
        let sr0 = trials_variance.sqrt() * expected_max;
        let spread = 1.0 - skewness * sharpe + (kurtosis - 1.0) / 4.0 * sharpe * sharpe;
        // NaN fails too.
        if spread.is_nan() || spread <= 0.0 {
            return None;
        }
        let z = (sharpe - sr0) * ((returns - 1) as f64).sqrt() / spread.sqrt();
        finite(normal_cdf(z))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deflated_sharpe_by_hand() {
        // SR 0.1 per bar, V 0.002, N 100, T 500, skewness -0.5, kurtosis 5:
        // Φ⁻¹(0.99) = 2.3263478740408408, Φ⁻¹(1 - 1/(100e)) = 2.680210444966887
        // SR₀ = sqrt(0.002) × (0.42278 × 2.32635 + 0.57722 × 2.67955)
        //     = 0.11317200186513214
        // spread = 1 + 0.5 × 0.1 + 4/4 × 0.01 = 1.06
        // z = (0.1 - 0.113172) × sqrt(499) / sqrt(1.06) = -0.2857913788102295
        // DSR = Φ(z) = 0.3875189557881643 (Python's NormalDist gives the
        // same digits for each step)
        let dsr = DeflatedSharpe::compute(0.1, 0.002, 100, 500, -0.5, 5.0).unwrap();
        assert!((dsr - 0.387_518_955_788_164_3).abs() < 1e-12, "{dsr}");
        // More trials raise the bar: the same winner is likelier luck.
        let more = DeflatedSharpe::compute(0.1, 0.002, 10_000, 500, -0.5, 5.0).unwrap();
        assert!(more < dsr, "{more} vs {dsr}");
        // No spread between trials: SR₀ = 0, the probabilistic Sharpe ratio.
        let psr = DeflatedSharpe::compute(0.1, 0.0, 100, 500, 0.0, 3.0).unwrap();
        // z = 0.1 × sqrt(499) / sqrt(1 + 2/4 × 0.01); Φ(z) = 0.98706864...
        let z: f64 = 0.1 * 499f64.sqrt() / 1.005f64.sqrt();
        assert!((psr - normal_cdf(z)).abs() < 1e-15);
        assert!(psr > 0.98 && psr < 0.99, "{psr}");
    }

    #[test]
    fn deflated_sharpe_undefined() {
        assert_eq!(DeflatedSharpe::compute(0.1, 0.002, 1, 500, 0.0, 3.0), None);
        assert_eq!(DeflatedSharpe::compute(0.1, 0.002, 100, 1, 0.0, 3.0), None);
        assert_eq!(DeflatedSharpe::compute(0.1, -1.0, 100, 500, 0.0, 3.0), None);
        assert_eq!(
            DeflatedSharpe::compute(0.1, f64::NAN, 100, 500, 0.0, 3.0),
            None
        );
        // 1 - 20 × 1 + … < 0: no distribution to speak of.
        assert_eq!(
            DeflatedSharpe::compute(1.0, 0.002, 100, 500, 20.0, 3.0),
            None
        );
    }
}
