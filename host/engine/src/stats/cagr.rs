//! Compound annual growth rate.

use super::finite;

/// Compound annual growth rate of the account, in percent per year.
///
/// ```text
/// cagr_pct = ((final_equity / initial_capital)^(1 / years) - 1) × 100
/// ```
///
/// `years` is the length of the backtest in years of 365 days, consistent
/// with the rest of the module; for `n` bars the caller passes
/// `n as f64 / periods_per_year(bar_seconds)` (that is
/// `n × bar_seconds / 31 536 000`). A backtest shorter than a year is
/// extrapolated to a full year (compounded), so short runs can show very
/// large rates.
///
/// Undefined (`None`):
/// - `years <= 0` or not finite;
/// - `initial_capital <= 0` or not finite;
/// - `final_equity <= 0` or not finite: a fractional power of a negative
///   growth factor has no real value, and a ruined account (equity 0) has no
///   meaningful growth rate (its [`TotalReturn`](super::TotalReturn) already
///   reports -100 % or worse);
/// - the result overflows (a large gain over a tiny `years`).
///
/// Reproducibility: `powf` comes from the platform's libm, so the last bit
/// may differ between platforms (never between runs on one platform).
pub struct Cagr;

impl Cagr {
    /// See [`Cagr`].
    pub fn compute(initial_capital: f64, final_equity: f64, years: f64) -> Option<f64> {
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !(positive(years) && positive(initial_capital) && positive(final_equity)) {
            return None;
        }
        let growth = final_equity / initial_capital;
        finite((growth.powf(1.0 / years) - 1.0) * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_close_some;
    use super::*;

    #[test]
    fn cagr_one_year_is_total_return() {
        // 100 -> 200 in 1 year: 2^1 - 1 = 1 -> 100 %
        assert_eq!(Cagr::compute(100.0, 200.0, 1.0), Some(100.0));
        // 100 -> 50 in 1 year: 0.5^1 - 1 = -0.5 -> -50 %
        assert_eq!(Cagr::compute(100.0, 50.0, 1.0), Some(-50.0));
        // Flat over any span: 1^x = 1 -> 0 %
        assert_eq!(Cagr::compute(100.0, 100.0, 0.5), Some(0.0));
    }

    #[test]
    fn cagr_by_hand() {
        // 100 -> 121 in 2 years: 1.21^(1/2) = 1.1 -> 10 %
        assert_close_some(Cagr::compute(100.0, 121.0, 2.0), 10.0);
        // 100 -> 400 in 2 years: 4^(1/2) = 2 -> 100 %
        assert_close_some(Cagr::compute(100.0, 400.0, 2.0), 100.0);
        // 100 -> 121 in half a year: 1.21^2 = 1.4641 -> 46.41 %
        assert_close_some(Cagr::compute(100.0, 121.0, 0.5), 46.41);
        // 1 000 -> 729 in 3 years: 0.729^(1/3) = 0.9 -> -10 %
        assert_close_some(Cagr::compute(1_000.0, 729.0, 3.0), -10.0);
        // Years from bars: 730 daily bars = 730 / 365 = 2 years;
        // 100 -> 144: 1.44^(1/2) = 1.2 -> 20 %
        let years = 730.0 / super::super::periods_per_year(86_400.0);
        assert_close_some(Cagr::compute(100.0, 144.0, years), 20.0);
    }

    #[test]
    fn cagr_undefined_cases() {
        // years <= 0 or not finite
        assert_eq!(Cagr::compute(100.0, 110.0, 0.0), None);
        assert_eq!(Cagr::compute(100.0, 110.0, -1.0), None);
        assert_eq!(Cagr::compute(100.0, 110.0, f64::NAN), None);
        assert_eq!(Cagr::compute(100.0, 110.0, f64::INFINITY), None);
        // final equity <= 0
        assert_eq!(Cagr::compute(100.0, 0.0, 1.0), None);
        assert_eq!(Cagr::compute(100.0, -10.0, 2.0), None);
        // initial capital <= 0
        assert_eq!(Cagr::compute(0.0, 100.0, 1.0), None);
        assert_eq!(Cagr::compute(-100.0, 100.0, 1.0), None);
        // overflow: 10 000^1000 = 1e4000 does not fit in a double
        assert_eq!(Cagr::compute(100.0, 1e6, 1e-3), None);
    }
}
