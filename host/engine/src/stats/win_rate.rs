//! Win rate.

/// Share of winning trades, in percent.
///
/// ```text
/// win_rate_pct = count(pnl > 0) × 100 / n
/// ```
///
/// `pnls` holds the net profit or loss of each closed trade (any currency
/// unit). A trade with a PnL of exactly 0 counts as not winning. Computed as
/// `wins × 100 / n` so the result is one correctly rounded division (2 wins
/// of 3 trades is exactly the double nearest 200/3).
///
/// Undefined (`None`): no trades.
pub struct WinRate;

impl WinRate {
    /// See [`WinRate`].
    pub fn compute(pnls: &[f64]) -> Option<f64> {
        if pnls.is_empty() {
            return None;
        }
        let wins = pnls.iter().filter(|&&pnl| pnl > 0.0).count();
        Some(wins as f64 * 100.0 / pnls.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win_rate_by_hand() {
        // [10, -5, 0, 20]: 2 wins (0 is not a win) of 4 -> 2 × 100 / 4 = 50
        assert_eq!(WinRate::compute(&[10.0, -5.0, 0.0, 20.0]), Some(50.0));
        // all win: 3 × 100 / 3 = 100
        assert_eq!(WinRate::compute(&[1.0, 2.0, 3.0]), Some(100.0));
        // none win: 0 × 100 / 1 = 0
        assert_eq!(WinRate::compute(&[-1.0]), Some(0.0));
        // 2 of 3: 200 / 3 = 66.666..., one correctly rounded division
        assert_eq!(WinRate::compute(&[1.0, -1.0, 1.0]), Some(200.0 / 3.0));
    }

    #[test]
    fn win_rate_no_trades() {
        assert_eq!(WinRate::compute(&[]), None);
    }
}
