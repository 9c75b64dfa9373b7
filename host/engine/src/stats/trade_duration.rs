//! Average trade duration.

/// Mean holding time of the closed trades, in seconds.
///
/// ```text
/// avg_duration_secs = Σ durations_secs[i] / n
/// ```
///
/// `durations_secs` holds each trade's duration (exit time minus entry
/// time) in seconds. The sum is exact (an `i128`, which cannot overflow for
/// any realistic number of trades) and is converted to `f64` once before
/// the single division, so the result does not depend on the order of the
/// trades.
///
/// Undefined (`None`): no trades.
pub struct AverageTradeDuration;

impl AverageTradeDuration {
    /// See [`AverageTradeDuration`].
    pub fn compute(durations_secs: &[i64]) -> Option<f64> {
        if durations_secs.is_empty() {
            return None;
        }
        let mut total: i128 = 0;
        for &duration in durations_secs {
            total += i128::from(duration);
        }
        Some(total as f64 / durations_secs.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_duration_by_hand() {
        // (60 + 120 + 300) / 3 = 480 / 3 = 160
        assert_eq!(AverageTradeDuration::compute(&[60, 120, 300]), Some(160.0));
        // (1 + 2) / 2 = 1.5
        assert_eq!(AverageTradeDuration::compute(&[1, 2]), Some(1.5));
        // (100 + 0 + 0) / 3 = 33.333... (one correctly rounded division)
        assert_eq!(
            AverageTradeDuration::compute(&[100, 0, 0]),
            Some(100.0 / 3.0)
        );
    }

    #[test]
    fn average_duration_does_not_overflow() {
        // (i64::MAX + i64::MAX) / 2 = i64::MAX = 2^63 - 1, which rounds to
        // 2^63 as a double.
        assert_eq!(
            AverageTradeDuration::compute(&[i64::MAX, i64::MAX]),
            Some(9_223_372_036_854_775_808.0)
        );
    }

    #[test]
    fn average_duration_no_trades() {
        assert_eq!(AverageTradeDuration::compute(&[]), None);
    }
}
