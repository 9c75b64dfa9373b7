//! Market exposure.

/// Share of bars with an open position, in percent.
///
/// ```text
/// exposure_pct = bars_in_market × 100 / total_bars
/// ```
///
/// `bars_in_market` counts the bars at whose close a position was open
/// (any size, long or short); it should not exceed `total_bars`. Computed as
/// `bars_in_market × 100 / total_bars`, one correctly rounded division.
///
/// Undefined case: `total_bars == 0` (no bars) returns `0.0`.
pub struct Exposure;

impl Exposure {
    /// See [`Exposure`].
    pub fn compute(bars_in_market: usize, total_bars: usize) -> f64 {
        debug_assert!(
            bars_in_market <= total_bars,
            "more bars in market than bars"
        );
        if total_bars == 0 {
            0.0
        } else {
            bars_in_market as f64 * 100.0 / total_bars as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_by_hand() {
        // 50 × 100 / 200 = 25
        assert_eq!(Exposure::compute(50, 200), 25.0);
        // 0 × 100 / 10 = 0
        assert_eq!(Exposure::compute(0, 10), 0.0);
        // 10 × 100 / 10 = 100
        assert_eq!(Exposure::compute(10, 10), 100.0);
        // 1 × 100 / 3 = 33.333... (one correctly rounded division)
        assert_eq!(Exposure::compute(1, 3), 100.0 / 3.0);
    }

    #[test]
    fn exposure_no_bars_is_zero() {
        assert_eq!(Exposure::compute(0, 0), 0.0);
    }
}
