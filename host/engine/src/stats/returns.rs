//! The annualisation factor and per-bar returns.

/// Seconds in the year used for annualisation: 365 days of 86 400 s.
///
/// Crypto markets trade every day, so no weekends or holidays are removed;
/// leap days are ignored.
pub const SECONDS_PER_YEAR: f64 = 365.0 * 86_400.0;

/// Number of bars in a year, the factor used to annualise per-bar
/// statistics:
///
/// ```text
/// periods_per_year = 365 × 86 400 / bar_seconds
/// ```
///
/// Crypto markets trade 24 hours a day on every day of the year, so the year
/// is 365 full days ([`SECONDS_PER_YEAR`] = 31 536 000 s), not 252 trading
/// days as for equity markets. For example: 1-minute bars give 525 600,
/// 1-hour bars 8 760, daily bars 365.
///
/// Undefined case: when `bar_seconds` is not a finite positive number (or
/// the quotient overflows), this returns `0.0`. [`SharpeRatio`] and
/// [`SortinoRatio`] return `None` for a factor of `0.0`, so an invalid
/// timeframe yields `null` ratios rather than NaN.
///
/// [`SharpeRatio`]: super::SharpeRatio
/// [`SortinoRatio`]: super::SortinoRatio
pub fn periods_per_year(bar_seconds: f64) -> f64 {
    if bar_seconds.is_finite() && bar_seconds > 0.0 {
        super::finite_or_zero(SECONDS_PER_YEAR / bar_seconds)
    } else {
        0.0
    }
}

/// Simple per-bar returns of an equity curve, as fractions (`0.01` is 1 %),
/// one per bar, so the result has the length of `equity`:
///
/// ```text
/// r[0] = (equity[0] - initial_capital) / initial_capital
/// r[i] = (equity[i] - equity[i-1])     / equity[i-1]        for i ≥ 1
/// ```
///
/// This is `equity[i] / equity[i-1] - 1` written with the subtraction first,
/// which rounds once instead of twice (the difference of two nearby
/// equities is exact).
///
/// Undefined case: when the previous equity (`initial_capital` for `r[0]`)
/// is `<= 0` or not finite, a percentage return has no meaning and the
/// return is defined as `0.0`; a return that would otherwise come out
/// non-finite (non-finite equity) is also `0.0`. Such bars are kept as zeros
/// rather than skipped so the returns stay aligned one-to-one with the bars,
/// and [`SharpeRatio`] / [`SortinoRatio`] see exactly one return per bar.
///
/// An empty `equity` gives an empty vector.
///
/// [`SharpeRatio`]: super::SharpeRatio
/// [`SortinoRatio`]: super::SortinoRatio
pub fn bar_returns(initial_capital: f64, equity: &[f64]) -> Vec<f64> {
    let mut returns = Vec::with_capacity(equity.len());
    let mut previous = initial_capital;
    for &current in equity {
        returns.push(simple_return(previous, current));
        previous = current;
    }
    returns
}

/// `(current - previous) / previous`, or `0.0` when `previous <= 0`, or the
/// result, is not finite.
#[inline]
pub fn simple_return(previous: f64, current: f64) -> f64 {
    // One test fewer per bar: an infinite or NaN `previous` needs none of
    // its own, it makes `r` NaN.
    let r = (current - previous) / previous;
    if previous > 0.0 && r.abs() < f64::INFINITY {
        r
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_per_year_for_common_timeframes() {
        // 365 × 86 400 = 31 536 000 s per year.
        // 1 minute:  31 536 000 / 60     = 525 600
        // 1 hour:    31 536 000 / 3 600  = 8 760
        // 1 day:     31 536 000 / 86 400 = 365
        // 1 week:    31 536 000 / 604 800 = 52.142857142857...(365 / 7)
        assert_eq!(SECONDS_PER_YEAR, 31_536_000.0);
        assert_eq!(periods_per_year(60.0), 525_600.0);
        assert_eq!(periods_per_year(3_600.0), 8_760.0);
        assert_eq!(periods_per_year(86_400.0), 365.0);
        // 31 536 000 / 604 800 is one correctly rounded division, as is
        // 365 / 7, and both are the same real number.
        assert_eq!(periods_per_year(604_800.0), 365.0 / 7.0);
    }

    #[test]
    fn periods_per_year_undefined_is_zero() {
        assert_eq!(periods_per_year(0.0), 0.0);
        assert_eq!(periods_per_year(-60.0), 0.0);
        assert_eq!(periods_per_year(f64::NAN), 0.0);
        assert_eq!(periods_per_year(f64::INFINITY), 0.0);
        // 31 536 000 / 5e-324 overflows to infinity.
        assert_eq!(periods_per_year(5e-324), 0.0);
    }

    #[test]
    fn bar_returns_by_hand() {
        // initial 100, equity [110, 99, 99, 0, 50, -10, 20]
        // r0 = (110 - 100) / 100 = 10 / 100  =  0.1
        // r1 = ( 99 - 110) / 110 = -11 / 110 = -0.1
        // r2 = ( 99 -  99) /  99 =  0
        // r3 = (  0 -  99) /  99 = -1
        // r4: previous equity 0  -> defined as 0
        // r5 = (-10 -  50) /  50 = -60 / 50  = -1.2
        // r6: previous equity -10 -> defined as 0
        // Each is one correctly rounded division, so it equals the literal.
        let r = bar_returns(100.0, &[110.0, 99.0, 99.0, 0.0, 50.0, -10.0, 20.0]);
        assert_eq!(r, vec![0.1, -0.1, 0.0, -1.0, 0.0, -1.2, 0.0]);
    }

    #[test]
    fn bar_returns_one_per_bar() {
        let r = bar_returns(100.0, &[101.0, 102.0, 103.0]);
        assert_eq!(r.len(), 3);
        // r0 = 1 / 100 = 0.01; r1 = 1 / 101; r2 = 1 / 102
        assert_eq!(r, vec![0.01, 1.0 / 101.0, 1.0 / 102.0]);
    }

    #[test]
    fn bar_returns_undefined_cases() {
        assert!(bar_returns(100.0, &[]).is_empty());
        // Initial capital <= 0: the first return is defined as 0.
        // r1 = (60 - 50) / 50 = 0.2
        assert_eq!(bar_returns(0.0, &[50.0, 60.0]), vec![0.0, 0.2]);
        assert_eq!(bar_returns(-5.0, &[50.0]), vec![0.0]);
        // Non-finite equity never produces a non-finite return.
        let r = bar_returns(100.0, &[f64::NAN, 100.0, f64::INFINITY, 100.0]);
        assert_eq!(r, vec![0.0, 0.0, 0.0, 0.0]);
    }
}
