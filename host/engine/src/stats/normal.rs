//! The standard normal distribution: its CDF and quantile, for the
//! deflated Sharpe ratio.

/// `Φ(x) = erfc(-x / √2) / 2`, the standard normal CDF, with the `libm`
/// crate's `erfc` (a Rust port of musl's, so the same bits on every
/// platform; it keeps its relative precision in the tails: about 1e-14 at
/// x = -8, where `(1 + erf)/2` would lose it all).
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x * std::f64::consts::FRAC_1_SQRT_2)
}

/// `Φ⁻¹(p)`, the standard normal quantile for `0 < p < 1` (`None`
/// outside): Acklam's rational approximation (relative error 1.15e-9),
/// then one Halley step on [`normal_cdf`], which brings it to the CDF's
/// own accuracy.
pub fn normal_quantile(p: f64) -> Option<f64> {
    if !(p > 0.0 && p < 1.0) {
        return None;
    }
    // The upper half by symmetry: `1 - p` is exact there (Sterbenz), and
    // the refinement below keeps its relative precision only on the tail
    // side that is near 0.
    if p > 0.5 {
        return normal_quantile(1.0 - p).map(|x| -x);
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let x = if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    };
    // Halley: the error of Φ(x) against p, scaled by the density.
    let e = normal_cdf(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (x * x / 2.0).exp();
    Some(x - u / (1.0 + x * u / 2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_at_known_points() {
        // Reference values: Python's statistics.NormalDist (erf-based).
        assert_eq!(normal_cdf(0.0), 0.5);
        assert!((normal_cdf(1.96) - 0.975_002_104_851_779_6).abs() < 1e-15);
        assert!((normal_cdf(-1.0) - 0.158_655_253_931_457_07).abs() < 1e-15);
        // The far tail keeps its relative precision (an erf-based
        // 0.5 × (1 + erf(x/√2)) loses it: Python's NormalDist gives
        // 6.106e-16 here). Φ(-8) = 6.22096057427178e-16 (tables; glibc's
        // erfc gives ...819e-16, musl's ...756e-16).
        let far = normal_cdf(-8.0);
        assert!(
            (far / 6.220_960_574_271_78e-16 - 1.0).abs() < 1e-13,
            "{far:e}"
        );
        assert_eq!(normal_cdf(40.0), 1.0);
        // Symmetry.
        assert!((normal_cdf(0.7) + normal_cdf(-0.7) - 1.0).abs() < 1e-15);
    }

    #[test]
    fn quantile_inverts_the_cdf() {
        let close = |p: f64, want: f64| {
            let got = normal_quantile(p).unwrap();
            assert!(
                (got - want).abs() < 1e-12 * want.abs().max(1.0),
                "Φ⁻¹({p}) = {got}, want {want}"
            );
        };
        close(0.975, 1.959_963_984_540_053_6);
        close(0.01, -2.326_347_874_040_840_8);
        close(1.0 - 1e-9, 5.997_807_019_601_638);
        close(0.5, 0.0);
        assert_eq!(normal_quantile(0.0), None);
        assert_eq!(normal_quantile(1.0), None);
        assert_eq!(normal_quantile(f64::NAN), None);
    }
}
