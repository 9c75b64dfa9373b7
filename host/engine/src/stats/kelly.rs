//! Kelly fraction.

use super::finite;

/// The Kelly criterion from closed trades' returns: the fraction of
/// equity to risk per trade that maximises long-run growth, if future
/// trades resemble these (as backtesting.py reports it):
///
/// ```text
/// p        = winning trades / trades          (return > 0)
/// avg_win  = mean return of winning trades
/// avg_loss = mean |return| of losing trades   (return < 0)
/// kelly    = p - (1 - p) / (avg_win / avg_loss)
/// ```
///
/// A fraction (`0.25` is a quarter of equity); negative means the edge is
/// negative and no stake is best. Trades returning exactly 0 count as
/// trades but neither as wins nor losses. Sums run in index order.
///
/// Undefined (`None`): no winning or no losing trade (the payoff ratio is
/// undefined), or a non-finite result.
pub struct Kelly;

impl Kelly {
    /// See [`Kelly`]. `returns` in any unit (percent or fractions): only
    /// their ratio matters.
    pub fn compute(returns: &[f64]) -> Option<f64> {
        let (mut wins, mut win_sum, mut losses, mut loss_sum) = (0usize, 0.0, 0usize, 0.0);
        for &r in returns {
            if r > 0.0 {
                wins += 1;
                win_sum += r;
            } else if r < 0.0 {
                losses += 1;
                loss_sum -= r;
            }
        }
        if wins == 0 || losses == 0 {
            return None;
        }
        let p = wins as f64 / returns.len() as f64;
        let payoff = (win_sum / wins as f64) / (loss_sum / losses as f64);
        finite(p - (1.0 - p) / payoff)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_close_some;
    use super::*;

    #[test]
    fn kelly_by_hand() {
        // Returns % [2, -1, 4, -1, 0]: p = 2 / 5 = 0.4
        // avg_win = (2 + 4) / 2 = 3, avg_loss = (1 + 1) / 2 = 1, payoff 3
        // kelly = 0.4 - 0.6 / 3 = 0.4 - 0.2 = 0.2
        assert_close_some(Kelly::compute(&[2.0, -1.0, 4.0, -1.0, 0.0]), 0.2);
        // A coin that pays 1:1 half the time: 0.5 - 0.5 / 1 = 0
        assert_eq!(Kelly::compute(&[1.0, -1.0]), Some(0.0));
        // Losing edge: p = 1/3, payoff 1 -> 1/3 - (2/3) / 1 = -1/3
        assert_close_some(Kelly::compute(&[1.0, -1.0, -1.0]), -1.0 / 3.0);
    }

    #[test]
    fn kelly_undefined() {
        assert_eq!(Kelly::compute(&[]), None);
        assert_eq!(Kelly::compute(&[1.0, 2.0]), None);
        assert_eq!(Kelly::compute(&[-1.0, 0.0]), None);
    }
}
