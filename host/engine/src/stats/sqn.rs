//! System Quality Number.

use super::{finite, mean};

/// Van Tharp's System Quality Number over closed trades' PnL (as
/// backtesting.py computes it, on cash PnL rather than R-multiples):
///
/// ```text
/// mean = Σ pnl / n
/// std  = sqrt( Σ (pnl - mean)² / (n - 1) )      (sample)
/// sqn  = sqrt(n) × mean / std
/// ```
///
/// No unit. Above 2 is commonly read as a good system, above 3 as an
/// excellent one; the number grows with the trade count, so compare it
/// between runs of similar length. Sums run in index order.
///
/// Undefined (`None`): fewer than 2 trades, all PnLs equal (`std == 0`), or
/// a non-finite result.
pub struct Sqn;

impl Sqn {
    /// See [`Sqn`].
    pub fn compute(pnls: &[f64]) -> Option<f64> {
        let n = pnls.len();
        if n < 2 || pnls.iter().all(|&p| p == pnls[0]) {
            return None;
        }
        let mean = mean(pnls)?;
        let mut squares = 0.0;
        for &p in pnls {
            squares += (p - mean) * (p - mean);
        }
        let std = (squares / (n - 1) as f64).sqrt();
        if std == 0.0 {
            return None;
        }
        finite((n as f64).sqrt() * mean / std)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_close_some;
    use super::*;

    #[test]
    fn sqn_by_hand() {
        // pnl [100, -50, 150, 0], n = 4, mean = 200 / 4 = 50
        // deviations 50, -100, 100, -50 -> squares 2500 + 10000 + 10000 + 2500 = 25000
        // std = sqrt(25000 / 3) = 91.287092917527685...
        // sqn = 2 × 50 / 91.287... = 1.0954451150103321 (= sqrt(1.2))
        assert_close_some(Sqn::compute(&[100.0, -50.0, 150.0, 0.0]), 1.2f64.sqrt());
        // Losing trades mirror the sign.
        assert_close_some(Sqn::compute(&[-100.0, 50.0, -150.0, 0.0]), -(1.2f64.sqrt()));
    }

    #[test]
    fn sqn_undefined() {
        assert_eq!(Sqn::compute(&[]), None);
        assert_eq!(Sqn::compute(&[10.0]), None);
        assert_eq!(Sqn::compute(&[0.1, 0.1, 0.1]), None);
        assert_eq!(Sqn::compute(&[1.0, f64::NAN]), None);
    }
}
