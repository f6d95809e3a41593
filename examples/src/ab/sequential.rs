//! Statistics for a report that people look at again and again: an always-valid test of the
//! difference in CTR, and the sample-ratio-mismatch check of the split.
//!
//! A fixed-horizon test (the z-test of `stats`) is valid when looked at once, at the planned end.
//! Looked at after every window, it declares a difference sooner or later even when there is
//! none (the "peeking" problem). The mixture sequential probability ratio test (mSPRT, Johari,
//! Koomen, Pekelis and Walsh, "Always Valid Inference", 2017/2022) gives a p-value that stays
//! valid however often it is looked at: under no difference, the chance that it *ever* drops
//! below α is at most α.
//!
//! For the difference θ = CTR_b − CTR_a, estimated by θ̂ with variance V (pooled under the
//! null: p̂(1−p̂)(1/n_a + 1/n_b)), and a normal mixing distribution N(0, τ²) over θ, the mixture
//! likelihood ratio is
//!
//! Λ = √(V / (V + τ²)) · exp(τ² θ̂² / (2 V (V + τ²)))
//!
//! and the always-valid p-value after n looks is min over the looks of 1/Λ (capped at 1). τ is
//! the size of difference the test is tuned to find quickly: [`DEFAULT_TAU`] is 2 points of CTR,
//! the size of lift an ad-ranking change is run for.

use super::stats::{erfc, format_p, Proportion};

/// The mixing scale τ: a difference of 2 points of CTR.
pub const DEFAULT_TAU: f64 = 0.02;

/// The always-valid test of arm `b` against arm `a`, updated at each look.
#[derive(Clone, Debug, PartialEq)]
pub struct Msprt {
    pub tau: f64,
    pub alpha: f64,
    /// The always-valid p-value so far.
    pub p_value: f64,
    /// Looks so far.
    pub looks: u32,
    /// The sign of the difference at the last look: > 0 when `b` is ahead.
    pub difference: f64,
}

impl Msprt {
    pub fn new(alpha: f64) -> Self {
        Self {
            tau: DEFAULT_TAU,
            alpha,
            p_value: 1.0,
            looks: 0,
            difference: 0.0,
        }
    }

    /// Looks at the totals so far; returns the always-valid p-value.
    pub fn look(&mut self, a: Proportion, b: Proportion) -> f64 {
        self.looks += 1;
        if a.impressions == 0 || b.impressions == 0 {
            return self.p_value;
        }
        let (na, nb) = (a.impressions as f64, b.impressions as f64);
        let pooled = (a.clicks + b.clicks) as f64 / (na + nb);
        let v = pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb);
        if v <= 0.0 {
            return self.p_value;
        }
        let theta = b.rate() - a.rate();
        let t2 = self.tau * self.tau;
        let log_lambda = 0.5 * (v / (v + t2)).ln() + t2 * theta * theta / (2.0 * v * (v + t2));
        self.p_value = self.p_value.min((-log_lambda).exp()).min(1.0);
        self.difference = theta;
        self.p_value
    }

    /// Whether the test has found a difference (at any look so far).
    pub fn significant(&self) -> bool {
        self.p_value < self.alpha
    }

    pub fn verdict(&self) -> String {
        let p = format_p(self.p_value);
        if !self.significant() {
            format!("no significant difference yet (always-valid p = {p})")
        } else if self.difference > 0.0 {
            format!("challenger wins (always-valid p = {p})")
        } else {
            format!("champion wins (always-valid p = {p})")
        }
    }
}

/// The sample-ratio-mismatch check: do the arms' counts fit the configured split?
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Srm {
    pub counts: [u64; 2],
    /// The share of arm `a` the split was configured with.
    pub expected_share: f64,
    /// Pearson's chi-square statistic, one degree of freedom.
    pub chi_square: f64,
    pub p_value: f64,
}

/// Below this p-value the split is reported broken: a mismatch this unlikely means the arms do
/// not see comparable traffic, whatever their CTRs say (the usual threshold, stricter than the
/// test's α because it is checked at every look).
pub const SRM_ALPHA: f64 = 0.001;

impl Srm {
    pub fn new(counts: [u64; 2], expected_share: f64) -> Self {
        let n = (counts[0] + counts[1]) as f64;
        let expected = [n * expected_share, n * (1.0 - expected_share)];
        let chi_square: f64 = if n == 0.0 {
            0.0
        } else {
            (0..2)
                .map(|i| {
                    let d = counts[i] as f64 - expected[i];
                    d * d / expected[i]
                })
                .sum()
        };
        // One degree of freedom: P(χ² > x) = P(|Z| > √x) = erfc(√(x/2)).
        let p_value = erfc((chi_square / 2.0).sqrt()).min(1.0);
        Self {
            counts,
            expected_share,
            chi_square,
            p_value,
        }
    }

    pub fn mismatch(&self) -> bool {
        self.p_value < SRM_ALPHA
    }

    pub fn verdict(&self) -> String {
        format!(
            "sample ratio {} / {} against {:.0}/{:.0} configured: chi-square = {:.2}, p = {} ({})",
            self.counts[0],
            self.counts[1],
            self.expected_share * 100.0,
            (1.0 - self.expected_share) * 100.0,
            self.chi_square,
            format_p(self.p_value),
            if self.mismatch() {
                "MISMATCH: the split is broken, do not trust the comparison"
            } else {
                "no mismatch"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small, seeded generator (xorshift64*), so that each seed is one reproducible run.
    struct Rng(u64);
    impl Rng {
        fn new(seed: u64) -> Self {
            Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// One run of `windows` windows, `per_window` impressions per arm in each, clicks drawn at
    /// `rates`; looked at after every window. Whether the test ever declared a difference.
    fn run(seed: u64, rates: [f64; 2], windows: u32, per_window: u64, alpha: f64) -> bool {
        let mut rng = Rng::new(seed);
        let mut totals = [Proportion::default(); 2];
        let mut test = Msprt::new(alpha);
        for _ in 0..windows {
            for (arm, rate) in rates.iter().enumerate() {
                for _ in 0..per_window {
                    totals[arm].impressions += 1;
                    if rng.uniform() < *rate {
                        totals[arm].clicks += 1;
                    }
                }
            }
            test.look(totals[0], totals[1]);
        }
        test.significant()
    }

    #[test]
    fn an_a_a_test_looked_at_after_every_window_is_declared_different_in_at_most_alpha_of_runs() {
        // The default traffic: 30,000 requests, 15,000 per arm over 30 windows; both arms at the
        // champion's CTR. A fixed-horizon z-test looked at 30 times would be fooled in roughly a
        // quarter of these runs.
        let fooled = (1..=100)
            .filter(|&seed| run(seed, [0.136, 0.136], 30, 500, 0.05))
            .count();
        assert!(
            fooled <= 5,
            "{fooled} of 100 A/A runs declared a difference"
        );
    }

    #[test]
    fn the_challengers_lift_is_still_found_at_the_default_traffic() {
        // The simulated lift: 13.6% against 16.4% (README), at the default traffic.
        let found = (1..=100)
            .filter(|&seed| run(seed, [0.136, 0.164], 30, 500, 0.05))
            .count();
        assert!(found >= 95, "found in only {found} of 100 runs");
    }

    #[test]
    fn peeking_at_a_fixed_horizon_test_is_fooled_where_the_always_valid_one_is_not() {
        // The reason for all this, measured: the z-test's p-value looked at after every window.
        use super::super::stats::two_proportion_z_test;
        let fooled = (1..=100)
            .filter(|&seed| {
                let mut rng = Rng::new(seed);
                let mut totals = [Proportion::default(); 2];
                (0..30).any(|_| {
                    for total in totals.iter_mut() {
                        for _ in 0..500 {
                            total.impressions += 1;
                            if rng.uniform() < 0.136 {
                                total.clicks += 1;
                            }
                        }
                    }
                    two_proportion_z_test(totals[0], totals[1]).p_value < 0.05
                })
            })
            .count();
        assert!(
            fooled > 10,
            "peeking fooled the z-test in only {fooled} of 100 runs"
        );
    }

    #[test]
    fn the_sample_ratio_check_flags_a_broken_split_and_passes_a_fair_one() {
        let fair = Srm::new([15_052, 14_948], 0.5);
        assert!(!fair.mismatch(), "{}", fair.verdict());
        assert!((fair.chi_square - 0.3605).abs() < 1e-3);
        let broken = Srm::new([15_500, 14_500], 0.5);
        assert!(broken.mismatch(), "{}", broken.verdict());
        // A 90/10 split checked against its own configuration is fine.
        assert!(!Srm::new([9_012, 988], 0.9).mismatch());
    }
}
