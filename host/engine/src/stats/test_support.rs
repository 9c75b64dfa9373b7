//! Assertions shared by the statistics' unit tests.

/// Relative tolerance for values whose hand arithmetic is rounded.
pub(crate) const REL_TOL: f64 = 1e-12;

/// Asserts `|actual - expected| <= 1e-12 * |expected|`. Use it only for a
/// non-zero `expected`; compare exact values with `assert_eq!`.
#[track_caller]
pub(crate) fn assert_close(actual: f64, expected: f64) {
    assert!(
        expected != 0.0 && expected.is_finite(),
        "assert_close needs a finite, non-zero expected value"
    );
    let tol = REL_TOL * expected.abs();
    assert!(
        (actual - expected).abs() <= tol,
        "expected {expected:e} (relative tolerance {REL_TOL:e}), got {actual:e}"
    );
}

/// [`assert_close`] for a statistic that must be defined.
#[track_caller]
pub(crate) fn assert_close_some(actual: Option<f64>, expected: f64) {
    match actual {
        Some(value) => assert_close(value, expected),
        None => panic!("expected Some({expected:e}), got None"),
    }
}
