//! Deterministic pseudo-random number generators: SplitMix64 and
//! xoshiro256\*\*, with the uniform mappings the engine draws through.
//!
//! Both are written out here rather than taken from a library, whose
//! "standard" generator may change between versions: a seed must mean the
//! same synthetic candles and the same optimization sample in every version
//! of stratbox, bit for bit. Never change an output or a mapping here.
//!
//! * [`SplitMix64`] (Steele, Lea & Flood, 2014) draws the random search
//!   samples ([`SplitMix64::below`]) and expands the seed of
//!   [`Xoshiro256StarStar`].
//! * [`Xoshiro256StarStar`] (Blackman & Vigna, 2018) drives the synthetic
//!   market data: uniforms on a 2^-53 grid in `[0, 1)`
//!   ([`next_f64`](Xoshiro256StarStar::next_f64)) and `(0, 1]`
//!   ([`next_f64_nonzero`](Xoshiro256StarStar::next_f64_nonzero)).

/// SplitMix64 (Steele, Lea & Flood, 2014): tiny, and fixed forever.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), without modulo bias (rejection).
    pub fn below(&mut self, n: u64) -> u64 {
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % n;
            }
        }
    }
}

/// xoshiro256** 1.0 (Blackman & Vigna, 2018).
pub struct Xoshiro256StarStar {
    s: [u64; 4],
}

/// 2^-53.
const UNIT_53: f64 = 1.0 / 9_007_199_254_740_992.0;

impl Xoshiro256StarStar {
    /// The state is the first four outputs of [`SplitMix64`] from `seed`.
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = SplitMix64::new(seed);
        let mut s = [sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()];
        if s == [0; 4] {
            // The all-zero state is a fixed point; SplitMix64 never produces
            // it in practice, but be safe.
            s[0] = 1;
        }
        Xoshiro256StarStar { s }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` on a 2^-53 grid (the top 53 bits).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * UNIT_53
    }

    /// Uniform in `(0, 1]` on a 2^-53 grid (safe to take the log of).
    pub fn next_f64_nonzero(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 * UNIT_53
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_published_sequence() {
        // First outputs for seed 0 (reference implementation by Vigna).
        let mut rng = SplitMix64::new(0);
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(rng.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn splitmix64_seed_1234567_reference_vector() {
        // The test vector of Vigna's splitmix64.c and of Java's
        // SplittableRandom for seed 1234567.
        let mut rng = SplitMix64::new(1_234_567);
        let first: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(
            first,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ]
        );
    }

    #[test]
    fn below_is_pinned_and_rejects_the_biased_zone() {
        let mut rng = SplitMix64::new(1_234_567);
        let small: Vec<u64> = (0..8).map(|_| rng.below(10)).collect();
        assert_eq!(small, [7, 3, 3, 1, 1, 4, 7, 7]);
        // With n = 2^63 + 1 the accepted zone is [0, n): the third raw
        // output (9817491932198370423) is rejected and the next one taken.
        let mut rng = SplitMix64::new(1_234_567);
        let n = (1 << 63) + 1;
        let big: Vec<u64> = (0..3).map(|_| rng.below(n)).collect();
        assert_eq!(
            big,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                4_593_380_528_125_082_431,
            ]
        );
        let mut rng = SplitMix64::new(99);
        assert!((0..1_000).all(|_| rng.below(1) == 0));
        assert!((0..10_000).all(|_| rng.below(7) < 7));
    }

    #[test]
    fn xoshiro_reference_vector() {
        // xoshiro256** from state [1, 2, 3, 4].
        let mut x = Xoshiro256StarStar { s: [1, 2, 3, 4] };
        let first: Vec<u64> = (0..4).map(|_| x.next_u64()).collect();
        assert_eq!(
            first,
            vec![11_520, 0, 1_509_978_240, 1_215_971_899_390_074_240]
        );
    }

    #[test]
    fn xoshiro_seeding_and_f64_mappings_are_pinned() {
        // The state is SplitMix64's first four outputs.
        let x = Xoshiro256StarStar::seed_from_u64(0);
        assert_eq!(
            x.s,
            [
                0xE220_A839_7B1D_CDAF,
                0x6E78_9E6A_A1B9_65F4,
                0x06C4_5D18_8009_454F,
                17_909_611_376_780_542_444,
            ]
        );
        let mut x = Xoshiro256StarStar::seed_from_u64(1_234_567);
        let first: Vec<u64> = (0..3).map(|_| x.next_u64()).collect();
        assert_eq!(
            first,
            [
                3_504_822_795_582_309_479,
                1_819_558_768_956_484_042,
                1_250_851_346_055_027_673,
            ]
        );
        // Top 53 bits times 2^-53 (plus one step for the nonzero form);
        // both products are exact.
        let two_53 = 9_007_199_254_740_992.0;
        let mut x = Xoshiro256StarStar::seed_from_u64(1_234_567);
        assert_eq!(x.next_f64(), 1_711_339_255_655_424.0 / two_53);
        assert_eq!(x.next_f64(), 888_456_430_154_533.0 / two_53);
        assert_eq!(x.next_f64_nonzero(), 610_767_258_815_932.0 / two_53);
        assert_eq!(x.next_f64_nonzero(), 8_271_597_497_607_419.0 / two_53);
    }

    #[test]
    fn uniform_ranges() {
        let mut rng = Xoshiro256StarStar::seed_from_u64(7);
        for _ in 0..10_000 {
            let a = rng.next_f64();
            assert!((0.0..1.0).contains(&a));
            let b = rng.next_f64_nonzero();
            assert!(b > 0.0 && b <= 1.0);
        }
    }
}
