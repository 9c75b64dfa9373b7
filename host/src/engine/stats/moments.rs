//! The sums Sharpe and Sortino are built from, gathered without
//! materialising the return series.

/// Sums over per-bar returns, each in index order (so every sum is
/// bit-identical to a plain loop over [`bar_returns`](super::bar_returns)):
///
/// ```text
/// n                 = number of returns
/// sum               = Σ r[i]
/// downside_squares  = Σ min(r[i], 0)²
/// deviation_squares = Σ (r[i] - sum / n)²      (second pass, two-pass variance)
/// all_equal         = every r[i] bit-equal to r[0]
/// ```
///
/// The first three sums are independent chains in one pass, so the CPU
/// overlaps them; computing them in separate loops would make each wait on
/// floating-point add latency in turn. The engine computes the returns in
/// place over its equity buffer, so no second buffer is needed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReturnMoments {
    pub n: usize,
    pub sum: f64,
    pub downside_squares: f64,
    pub deviation_squares: f64,
    pub all_equal: bool,
}

impl ReturnMoments {
    /// From per-bar returns ([`bar_returns`](super::bar_returns) or
    /// [`bar_returns_in_place`](super::bar_returns_in_place)).
    pub fn from_returns(returns: &[f64]) -> Self {
        let n = returns.len();
        let mut sum = 0.0;
        let mut downside_squares = 0.0;
        let mut all_equal = true;
        let first = returns.first().copied().unwrap_or(0.0);
        for &x in returns {
            sum += x;
            let downside = x.min(0.0);
            downside_squares += downside * downside;
            all_equal &= x == first;
        }
        let mut deviation_squares = 0.0;
        if n > 0 {
            let mean = sum / n as f64;
            for &x in returns {
                let deviation = x - mean;
                deviation_squares += deviation * deviation;
            }
        }
        Self {
            n,
            sum,
            downside_squares,
            deviation_squares,
            all_equal,
        }
    }

    /// `sum / n`, `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::engine::stats::bar_returns;

    #[test]
    fn in_place_and_explicit_returns_give_identical_sums() {
        // Equity 10000 -> 11000 -> 9900 -> 9900: returns 0.1, -0.1, 0.
        let equity = [11_000.0, 9_900.0, 9_900.0];
        let mut in_place = equity;
        crate::engine::stats::bar_returns_in_place(10_000.0, &mut in_place);
        let from_equity = ReturnMoments::from_returns(&in_place);
        let from_returns = ReturnMoments::from_returns(&bar_returns(10_000.0, &equity));
        assert_eq!(from_equity, from_returns);
        assert_eq!(from_equity.n, 3);
        // 0.1 + -0.1 + 0 = 0; downside: 0.01.
        assert!((from_equity.sum).abs() < 1e-15);
        assert!((from_equity.downside_squares - 0.01).abs() < 1e-15);
        assert!(!from_equity.all_equal);
    }

    #[test]
    fn constant_series_is_flagged_and_empty_has_no_mean() {
        let m = ReturnMoments::from_returns(&[0.1, 0.1, 0.1]);
        assert!(m.all_equal);
        assert_eq!(ReturnMoments::from_returns(&[]).mean(), None);
    }
}
