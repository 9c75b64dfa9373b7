//! Calmar ratio.

use super::finite;

/// Calmar ratio: annual growth per unit of maximum drawdown.
///
/// ```text
/// calmar = cagr_pct / max_drawdown_pct
/// ```
///
/// Both inputs are in percent, so the ratio has no unit: `cagr_pct` from
/// [`Cagr`](super::Cagr) and `max_drawdown_pct` (positive) from
/// [`MaxDrawdown`](super::MaxDrawdown). Unlike the traditional definition
/// (the last 36 months), both cover the whole backtest.
///
/// Undefined (`None`):
/// - `cagr_pct` is `None` (or not finite);
/// - `max_drawdown_pct == 0` (equity never fell below its peak), or it is
///   negative or not finite (not a valid drawdown).
pub struct CalmarRatio;

impl CalmarRatio {
    /// See [`CalmarRatio`].
    pub fn compute(cagr_pct: Option<f64>, max_drawdown_pct: f64) -> Option<f64> {
        let cagr_pct = cagr_pct?;
        if max_drawdown_pct.is_finite() && max_drawdown_pct > 0.0 {
            finite(cagr_pct / max_drawdown_pct)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calmar_by_hand() {
        // 30 / 15 = 2
        assert_eq!(CalmarRatio::compute(Some(30.0), 15.0), Some(2.0));
        // -10 / 20 = -0.5
        assert_eq!(CalmarRatio::compute(Some(-10.0), 20.0), Some(-0.5));
        // 0 / 5 = 0
        assert_eq!(CalmarRatio::compute(Some(0.0), 5.0), Some(0.0));
        // 10 / 3 = 3.333... (one correctly rounded division)
        assert_eq!(CalmarRatio::compute(Some(10.0), 3.0), Some(10.0 / 3.0));
    }

    #[test]
    fn calmar_undefined_cases() {
        assert_eq!(CalmarRatio::compute(None, 15.0), None);
        assert_eq!(CalmarRatio::compute(Some(30.0), 0.0), None);
        assert_eq!(CalmarRatio::compute(Some(30.0), -5.0), None);
        assert_eq!(CalmarRatio::compute(Some(30.0), f64::NAN), None);
        assert_eq!(CalmarRatio::compute(Some(f64::NAN), 15.0), None);
        // 1e300 / 1e-300 overflows
        assert_eq!(CalmarRatio::compute(Some(1e300), 1e-300), None);
    }
}
