//! Expectancy: what a trade is worth on average.

use super::{finite, mean};

/// The expected PnL of one trade, in the account currency:
///
/// ```text
/// expectancy = p_win × avg_win - p_loss × avg_loss = Σ pnl / n
/// ```
///
/// (the two forms are equal: both are the mean PnL; the mean is what is
/// computed, summed in index order). Positive means the strategy made money
/// per trade after fees.
///
/// Undefined (`None`): no trades, or a non-finite result.
pub struct Expectancy;

impl Expectancy {
    /// See [`Expectancy`].
    pub fn compute(pnls: &[f64]) -> Option<f64> {
        finite(mean(pnls)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectancy_by_hand() {
        // Wins 100 and 50 (p_win = 2/4, avg_win = 75), losses -30 and -40
        // (p_loss = 2/4, avg_loss = 35): 0.5 × 75 - 0.5 × 35 = 20
        // = (100 + 50 - 30 - 40) / 4 = 80 / 4 = 20
        assert_eq!(
            Expectancy::compute(&[100.0, -30.0, 50.0, -40.0]),
            Some(20.0)
        );
        assert_eq!(Expectancy::compute(&[-8.0]), Some(-8.0));
        assert_eq!(Expectancy::compute(&[]), None);
        assert_eq!(Expectancy::compute(&[f64::INFINITY]), None);
    }
}
