//! Profit factor.

use super::finite;

/// Gross profit divided by gross loss.
///
/// ```text
/// gross_profit  = Σ pnl        over trades with pnl > 0
/// gross_loss    = Σ (-pnl)     over trades with pnl < 0
/// profit_factor = gross_profit / gross_loss
/// ```
///
/// `pnls` holds the net profit or loss of each closed trade; the ratio has
/// no unit. Trades with a PnL of 0 add to neither sum. Sums run in index
/// order. Above 1 the strategy made more than it lost; with losing trades
/// only it is `0.0`.
///
/// Undefined (`None`): no losing trade (`gross_loss == 0`, which includes no
/// trades at all), or a non-finite result (non-finite input).
pub struct ProfitFactor;

impl ProfitFactor {
    /// See [`ProfitFactor`].
    pub fn compute(pnls: &[f64]) -> Option<f64> {
        let mut gross_profit = 0.0;
        let mut gross_loss = 0.0;
        for &pnl in pnls {
            if pnl > 0.0 {
                gross_profit += pnl;
            } else if pnl < 0.0 {
                gross_loss -= pnl;
            }
        }
        if gross_loss == 0.0 {
            return None;
        }
        finite(gross_profit / gross_loss)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_close_some;
    use super::*;

    #[test]
    fn profit_factor_by_hand() {
        // [100, -50]: 100 / 50 = 2
        assert_eq!(ProfitFactor::compute(&[100.0, -50.0]), Some(2.0));
        // [100, -50, 30, -20, 0]: profit 100 + 30 = 130, loss 50 + 20 = 70
        // 130 / 70 = 13 / 7 = 1.857142857142857...
        assert_close_some(
            ProfitFactor::compute(&[100.0, -50.0, 30.0, -20.0, 0.0]),
            13.0 / 7.0,
        );
        // losses only: 0 / (10 + 5) = 0
        assert_eq!(ProfitFactor::compute(&[-10.0, -5.0]), Some(0.0));
    }

    #[test]
    fn profit_factor_undefined_cases() {
        assert_eq!(ProfitFactor::compute(&[]), None);
        assert_eq!(ProfitFactor::compute(&[10.0, 20.0]), None);
        assert_eq!(ProfitFactor::compute(&[0.0, 0.0]), None);
        assert_eq!(ProfitFactor::compute(&[f64::INFINITY, -1.0]), None);
        assert_eq!(ProfitFactor::compute(&[1.0, f64::NEG_INFINITY]), Some(0.0));
        // 1e300 / 1e-300 overflows
        assert_eq!(ProfitFactor::compute(&[1e300, -1e-300]), None);
    }
}
