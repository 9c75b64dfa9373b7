//! Backtest performance statistics.
//!
//! Modelled on NautilusTrader's statistics: one unit struct per statistic
//! (for example [`SharpeRatio`]) with an associated `compute` function. The
//! module knows nothing else of the engine: every input is a plain slice or
//! scalar, so each statistic can be checked by hand.
//!
//! # Inputs
//!
//! - `equity: &[f64]`: account equity marked to the close of every bar, one
//!   value per bar. `equity[0]` is the equity *after* bar 0, not the initial
//!   capital.
//! - `initial_capital: f64`: equity before bar 0 (at the open of bar 0).
//! - `ts: &[i64]`: bar open times in unix seconds, one per bar, aligned with
//!   `equity` and non-decreasing.
//! - `bar_seconds: f64`: the bar length (timeframe) in seconds.
//! - Trades: slices of per-trade numbers (PnL, return in percent, duration).
//!
//! Inputs are expected to be finite. Where a result is computed from
//! non-finite input, the statistics that return `Option` return `None`.
//!
//! # Units
//!
//! Per-bar returns ([`bar_returns`]) are plain fractions (`0.01` is 1 %).
//! Every statistic whose name or doc says "percent" is in percentage points
//! (`12.5` means 12.5 %). Ratios (Sharpe, Sortino, Calmar, profit factor)
//! have no unit. Durations are in bars or in seconds, as named.
//!
//! # Annualisation
//!
//! Crypto markets trade around the clock on every day of the year, so a year
//! is 365 days of 86 400 s ([`SECONDS_PER_YEAR`]): no weekends or holidays are
//! removed (unlike the 252-day convention of equity markets) and leap days
//! are ignored. See [`periods_per_year`].
//!
//! # Undefined results
//!
//! A statistic that is undefined for its input (division by zero, too few
//! points) returns `None`, which the report serialises as JSON `null`. No
//! statistic ever returns NaN or an infinity: an `Option` statistic whose
//! arithmetic would produce one returns `None`, and each statistic that
//! returns a bare `f64` documents the value (always `0.0`) it returns for its
//! degenerate case.
//!
//! # Reproducibility
//!
//! Every sum is a plain left-to-right loop in index order (no pairwise,
//! Kahan, SIMD or parallel summation, and no fused multiply-add), so the same
//! input gives bit-identical results on every IEEE-754 platform. `sqrt` is
//! correctly rounded by IEEE-754 and so identical everywhere; only
//! [`Cagr`] uses `powf`, whose last bit comes from the platform's libm and
//! may differ between platforms (never between runs on one platform).

mod cagr;
mod calmar;
mod deflated_sharpe;
mod downsample;
mod drawdown;
mod expectancy;
mod exposure;
mod kelly;
mod kurtosis;
mod moments;
mod normal;
mod profit_factor;
mod returns;
mod sharpe;
mod skewness;
mod sortino;
mod sqn;
mod total_return;
mod trade_duration;
mod trade_returns;
mod volatility;
mod win_rate;

#[cfg(test)]
mod test_support;

pub use cagr::Cagr;
pub use calmar::CalmarRatio;
pub use deflated_sharpe::DeflatedSharpe;
pub use downsample::downsample_indices;
pub use drawdown::{Drawdown, DrawdownTracker, MaxDrawdown};
pub use expectancy::Expectancy;
pub use exposure::Exposure;
pub use kelly::Kelly;
pub use kurtosis::ReturnKurtosis;
pub use moments::{MomentsAccumulator, ReturnMoments};
pub use normal::{normal_cdf, normal_quantile};
pub use profit_factor::ProfitFactor;
pub use returns::{bar_returns, periods_per_year, simple_return, SECONDS_PER_YEAR};
pub use sharpe::SharpeRatio;
pub use skewness::ReturnSkewness;
pub use sortino::SortinoRatio;
pub use sqn::Sqn;
pub use total_return::{BuyAndHoldReturn, TotalReturn};
pub use trade_duration::AverageTradeDuration;
pub use trade_returns::{TradeReturnSummary, TradeReturns};
pub use volatility::AnnualVolatility;
pub use win_rate::WinRate;

/// `Some(x)` when `x` is finite, `None` for NaN and the infinities.
fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// `x` when it is finite, `0.0` for NaN and the infinities (for the
/// statistics whose signature is a bare `f64`).
fn finite_or_zero(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Sum in plain index order (see the module doc on reproducibility).
fn sum(xs: &[f64]) -> f64 {
    let mut total = 0.0;
    for &x in xs {
        total += x;
    }
    total
}

/// Arithmetic mean, `sum(xs) / n`, summed in index order; `None` when empty.
fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        None
    } else {
        Some(sum(xs) / xs.len() as f64)
    }
}

/// Whether an annualisation factor can be used: finite and positive.
pub(crate) fn valid_periods_per_year(periods_per_year: f64) -> bool {
    periods_per_year.is_finite() && periods_per_year > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_is_left_to_right() {
        // Left to right: (1e16 + 1) + 1 = 1e16 + 1 = 1e16 (each 1 is lost in
        // the rounding, the spacing of doubles at 1e16 being 2), whereas
        // (1 + 1) + 1e16 would give 1e16 + 2 exactly.
        assert_eq!(sum(&[1e16, 1.0, 1.0]), 1e16);
        assert_eq!(sum(&[1.0, 1.0, 1e16]), 1e16 + 2.0);
        assert_eq!(sum(&[]), 0.0);
    }

    #[test]
    fn mean_of_empty_is_none() {
        assert_eq!(mean(&[]), None);
        // (1 + 2 + 6) / 3 = 3
        assert_eq!(mean(&[1.0, 2.0, 6.0]), Some(3.0));
    }

    #[test]
    fn finite_helpers() {
        assert_eq!(finite(1.5), Some(1.5));
        assert_eq!(finite(f64::NAN), None);
        assert_eq!(finite(f64::INFINITY), None);
        assert_eq!(finite(f64::NEG_INFINITY), None);
        assert_eq!(finite_or_zero(-2.0), -2.0);
        assert_eq!(finite_or_zero(f64::NAN), 0.0);
        assert_eq!(finite_or_zero(f64::INFINITY), 0.0);
    }
}
