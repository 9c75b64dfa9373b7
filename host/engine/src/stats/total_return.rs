//! Total return of the strategy and of buy-and-hold.

use super::finite_or_zero;

/// Total return of the account over the whole backtest, in percent.
///
/// ```text
/// total_return_pct = (final_equity - initial_capital) / initial_capital × 100
/// ```
///
/// `final_equity` is the last value of the equity curve (the equity marked
/// to the close of the last bar); with no bars, pass `initial_capital`,
/// which gives `0.0`. Not annualised (see [`Cagr`](super::Cagr)). A loss of
/// more than the whole capital (negative final equity) gives less than
/// -100.
///
/// Undefined case: when `initial_capital` is `<= 0` or not finite, or the
/// result is not finite, this returns `0.0` (the engine rejects such a
/// capital before a run, so this is only a guard against NaN).
pub struct TotalReturn;

impl TotalReturn {
    /// See [`TotalReturn`].
    pub fn compute(initial_capital: f64, final_equity: f64) -> f64 {
        percent_change(initial_capital, final_equity)
    }
}

/// Buy-and-hold benchmark: the percent change of the price over the
/// backtest, as if the whole capital had bought the asset at the start and
/// held it to the end, with no fees, slippage, funding or leverage.
///
/// ```text
/// buy_and_hold_pct = (last_close - first_open) / first_open × 100
/// ```
///
/// `first_open` is the **open of the first bar**, not its close: the initial
/// capital is valued at the open of bar 0 and the equity curve includes the
/// move of bar 0, so buy-and-hold covers the same span as
/// [`TotalReturn`]. `last_close` is the close of the last bar.
///
/// Undefined case: when `first_open` is `<= 0` or not finite, or the result
/// is not finite, this returns `0.0`.
pub struct BuyAndHoldReturn;

impl BuyAndHoldReturn {
    /// See [`BuyAndHoldReturn`].
    pub fn compute(first_open: f64, last_close: f64) -> f64 {
        percent_change(first_open, last_close)
    }
}

/// `(to - from) / from × 100`, or `0.0` when `from <= 0` or the result is
/// not finite.
fn percent_change(from: f64, to: f64) -> f64 {
    if from.is_finite() && from > 0.0 {
        finite_or_zero((to - from) / from * 100.0)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_close;
    use super::*;

    #[test]
    fn total_return_by_hand() {
        // (110 - 100) / 100 × 100 = 0.1 × 100 = 10. The double nearest 0.1
        // is 0.1 + 5.6e-18; times 100 that is 10 + 5.6e-16, within half a
        // spacing (8.9e-16) of 10, so the result is exactly 10.
        assert_eq!(TotalReturn::compute(100.0, 110.0), 10.0);
        // (75 - 100) / 100 × 100 = -0.25 × 100 = -25 (exact in binary)
        assert_eq!(TotalReturn::compute(100.0, 75.0), -25.0);
        // (0 - 1000) / 1000 × 100 = -100
        assert_eq!(TotalReturn::compute(1_000.0, 0.0), -100.0);
        // (-500 - 1000) / 1000 × 100 = -150
        assert_eq!(TotalReturn::compute(1_000.0, -500.0), -150.0);
        // No bars: final = initial -> 0
        assert_eq!(TotalReturn::compute(10_000.0, 10_000.0), 0.0);
        // (10 000 - 3 000) / 3 000 × 100 = 7/3 × 100 = 233.333... (rounded)
        assert_close(TotalReturn::compute(3_000.0, 10_000.0), 700.0 / 3.0);
    }

    #[test]
    fn total_return_undefined_is_zero() {
        assert_eq!(TotalReturn::compute(0.0, 100.0), 0.0);
        assert_eq!(TotalReturn::compute(-100.0, 100.0), 0.0);
        assert_eq!(TotalReturn::compute(f64::NAN, 100.0), 0.0);
        assert_eq!(TotalReturn::compute(100.0, f64::NAN), 0.0);
        assert_eq!(TotalReturn::compute(100.0, f64::INFINITY), 0.0);
    }

    #[test]
    fn buy_and_hold_by_hand() {
        // open 20 000 -> close 25 000: 5 000 / 20 000 × 100 = 0.25 × 100 = 25
        assert_eq!(BuyAndHoldReturn::compute(20_000.0, 25_000.0), 25.0);
        // open 50 -> close 40: -10 / 50 × 100 = -0.2 × 100 = -20. The
        // double nearest 0.2 is 0.2 + 1.1e-17; times 100 that is within
        // half a spacing (1.8e-15) of 20, so exactly -20.
        assert_eq!(BuyAndHoldReturn::compute(50.0, 40.0), -20.0);
        // open 3 -> close 4: 1/3 × 100 = 33.333... (rounded)
        assert_close(BuyAndHoldReturn::compute(3.0, 4.0), 100.0 / 3.0);
    }

    #[test]
    fn buy_and_hold_undefined_is_zero() {
        assert_eq!(BuyAndHoldReturn::compute(0.0, 10.0), 0.0);
        assert_eq!(BuyAndHoldReturn::compute(-1.0, 10.0), 0.0);
        assert_eq!(BuyAndHoldReturn::compute(f64::INFINITY, 10.0), 0.0);
        assert_eq!(BuyAndHoldReturn::compute(5e-324, 1e300), 0.0);
    }
}
