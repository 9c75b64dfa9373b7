//! Downsampling of the equity curve for reports.

/// Indices of the points to keep so that an equity curve of `len` points is
/// drawn with at most `max_points` points.
///
/// - `len <= max_points`: every index, `0..len` (so `len == 0` gives an
///   empty vector and `len == 1` gives `[0]`).
/// - otherwise exactly `m = max_points` indices, evenly strided with integer
///   arithmetic:
///
///   ```text
///   index_k = floor(k × (len - 1) / (m - 1))      for k = 0, 1, …, m - 1
///   ```
///
///   so the first (`0`) and the last (`len - 1`) points are always kept and
///   consecutive gaps are `floor((len - 1) / (m - 1))` or one more. Since
///   `len > m`, every gap is at least 1: the indices are strictly
///   increasing.
///
/// `max_points` below 2 is treated as 2 (the first and last points are
/// always kept). The result depends only on `len` and `max_points` (no
/// floating point), and the products are taken in `u128` so they cannot
/// overflow.
pub fn downsample_indices(len: usize, max_points: usize) -> Vec<usize> {
    let max_points = max_points.max(2);
    if len <= max_points {
        return (0..len).collect();
    }
    let last = (len - 1) as u128;
    let intervals = (max_points - 1) as u128;
    (0..max_points)
        .map(|k| {
            // k ≤ m - 1, so the quotient is at most len - 1 and fits a usize.
            (k as u128 * last / intervals) as usize
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented invariants, for a result of `downsample_indices(len, max)`.
    fn check_invariants(len: usize, max_points: usize, indices: &[usize]) {
        let max_points = max_points.max(2);
        assert_eq!(
            indices.len(),
            len.min(max_points),
            "len {len}, max {max_points}"
        );
        if len > 0 {
            assert_eq!(indices.first(), Some(&0));
            assert_eq!(indices.last(), Some(&(len - 1)));
        }
        assert!(
            indices.windows(2).all(|w| w[0] < w[1]),
            "strictly increasing"
        );
        if len > max_points {
            let base = (len - 1) / (max_points - 1);
            assert!(indices
                .windows(2)
                .all(|w| w[1] - w[0] == base || w[1] - w[0] == base + 1));
        }
    }

    #[test]
    fn empty_and_single_point() {
        assert_eq!(downsample_indices(0, 10), Vec::<usize>::new());
        assert_eq!(downsample_indices(1, 10), vec![0]);
        assert_eq!(downsample_indices(0, 2), Vec::<usize>::new());
        assert_eq!(downsample_indices(1, 2), vec![0]);
    }

    #[test]
    fn short_curves_are_kept_whole() {
        assert_eq!(downsample_indices(3, 10), vec![0, 1, 2]);
        assert_eq!(downsample_indices(5, 5), vec![0, 1, 2, 3, 4]);
        assert_eq!(downsample_indices(2, 2), vec![0, 1]);
    }

    #[test]
    fn one_point_too_many() {
        // len 6, max 5: floor(k × 5 / 4) for k = 0..4 = 0, 1, 2, 3, 5
        assert_eq!(downsample_indices(6, 5), vec![0, 1, 2, 3, 5]);
        // len 3, max 2: first and last only
        assert_eq!(downsample_indices(3, 2), vec![0, 2]);
    }

    #[test]
    fn even_strides_by_hand() {
        // len 10, max 4: floor(k × 9 / 3) = 0, 3, 6, 9
        assert_eq!(downsample_indices(10, 4), vec![0, 3, 6, 9]);
        // len 11, max 3: floor(k × 10 / 2) = 0, 5, 10
        assert_eq!(downsample_indices(11, 3), vec![0, 5, 10]);
        // len 10, max 2: 0 and 9
        assert_eq!(downsample_indices(10, 2), vec![0, 9]);
    }

    #[test]
    fn max_points_below_two_is_two() {
        assert_eq!(downsample_indices(10, 1), vec![0, 9]);
        assert_eq!(downsample_indices(10, 0), vec![0, 9]);
        assert_eq!(downsample_indices(1, 0), vec![0]);
        assert_eq!(downsample_indices(0, 0), Vec::<usize>::new());
    }

    #[test]
    fn large_curve() {
        // len 1 000 000, max 1 000: (len - 1) / (m - 1) = 999 999 / 999
        // = 1 001 exactly, so index_k = 1 001 k and the last is 999 999.
        let indices = downsample_indices(1_000_000, 1_000);
        assert_eq!(indices.len(), 1_000);
        assert!(indices.iter().enumerate().all(|(k, &i)| i == 1_001 * k));
        assert_eq!(indices.last(), Some(&999_999));
        // A stride that is not a whole number: 1 000 000 / 499 = 2 004.0...
        let indices = downsample_indices(1_000_001, 500);
        check_invariants(1_000_001, 500, &indices);
    }

    #[test]
    fn huge_len_does_not_overflow() {
        // len usize::MAX, max 3: floor(k × (MAX - 1) / 2) = 0, (MAX - 1) / 2,
        // MAX - 1
        let last = usize::MAX - 1;
        assert_eq!(downsample_indices(usize::MAX, 3), vec![0, last / 2, last]);
    }

    #[test]
    fn invariants_hold_for_all_small_cases() {
        for len in 0..200 {
            for max_points in 0..50 {
                let indices = downsample_indices(len, max_points);
                check_invariants(len, max_points, &indices);
                // deterministic
                assert_eq!(indices, downsample_indices(len, max_points));
            }
        }
    }
}
