//! Average, best and worst trade return.

use super::{finite, mean};

/// Result of [`TradeReturns::compute`]; every field is in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TradeReturnSummary {
    /// Arithmetic mean of the trade returns.
    pub avg_pct: f64,
    /// Largest trade return.
    pub best_pct: f64,
    /// Smallest (most negative) trade return.
    pub worst_pct: f64,
}

/// Average, best and worst return of the closed trades.
///
/// ```text
/// avg_pct   = Σ returns_pct[i] / n        (summed in index order)
/// best_pct  = max_i returns_pct[i]
/// worst_pct = min_i returns_pct[i]
/// ```
///
/// `returns_pct` holds each trade's return in percent (`2.5` is 2.5 %), as
/// computed by the engine. The average is a simple (not compounded,
/// not size-weighted) mean.
///
/// Undefined (`None`): no trades, or a non-finite value in `returns_pct`.
pub struct TradeReturns;

impl TradeReturns {
    /// See [`TradeReturns`].
    pub fn compute(returns_pct: &[f64]) -> Option<TradeReturnSummary> {
        if returns_pct.iter().any(|r| !r.is_finite()) {
            return None;
        }
        let avg_pct = finite(mean(returns_pct)?)?;
        let mut best_pct = returns_pct[0];
        let mut worst_pct = returns_pct[0];
        for &r in &returns_pct[1..] {
            best_pct = best_pct.max(r);
            worst_pct = worst_pct.min(r);
        }
        Some(TradeReturnSummary {
            avg_pct,
            best_pct,
            worst_pct,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::assert_close;
    use super::*;

    #[test]
    fn trade_returns_by_hand() {
        // [2, -1, 5, -4]: sum 2 - 1 + 5 - 4 = 2; avg 2 / 4 = 0.5;
        // best 5; worst -4
        assert_eq!(
            TradeReturns::compute(&[2.0, -1.0, 5.0, -4.0]),
            Some(TradeReturnSummary {
                avg_pct: 0.5,
                best_pct: 5.0,
                worst_pct: -4.0,
            })
        );
    }

    #[test]
    fn trade_returns_rounded_average() {
        // [1.5, 2.5, -0.5]: sum 3.5; avg 3.5 / 3 = 7 / 6 = 1.1666...
        let summary = TradeReturns::compute(&[1.5, 2.5, -0.5]).unwrap();
        assert_close(summary.avg_pct, 7.0 / 6.0);
        assert_eq!(summary.best_pct, 2.5);
        assert_eq!(summary.worst_pct, -0.5);
    }

    #[test]
    fn trade_returns_single_trade() {
        // one trade: avg = best = worst = 3
        assert_eq!(
            TradeReturns::compute(&[3.0]),
            Some(TradeReturnSummary {
                avg_pct: 3.0,
                best_pct: 3.0,
                worst_pct: 3.0,
            })
        );
    }

    #[test]
    fn trade_returns_undefined_cases() {
        assert_eq!(TradeReturns::compute(&[]), None);
        assert_eq!(TradeReturns::compute(&[1.0, f64::NAN]), None);
        assert_eq!(TradeReturns::compute(&[f64::INFINITY, 1.0]), None);
        // finite inputs whose sum overflows
        assert_eq!(TradeReturns::compute(&[f64::MAX, f64::MAX]), None);
    }
}
