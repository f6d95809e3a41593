//! The statistics of the A/B report: the normal CDF, the pooled two-proportion z-test, the lift
//! with its interval, and the decision.

use std::fmt;

/// The complementary error function, Numerical Recipes' `erfcc` (Chebyshev fit): fractional
/// error below 1.2e-7 everywhere.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The standard normal CDF, Φ(x) = erfc(−x/√2)/2.
pub fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

/// Clicks out of impressions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Proportion {
    pub clicks: u64,
    pub impressions: u64,
}

impl Proportion {
    pub fn new(clicks: u64, impressions: u64) -> Self {
        Self {
            clicks,
            impressions,
        }
    }

    /// The rate, 0 with no impressions.
    pub fn rate(&self) -> f64 {
        if self.impressions == 0 {
            0.0
        } else {
            self.clicks as f64 / self.impressions as f64
        }
    }

    /// The Wilson score 95% interval.
    pub fn wilson(&self) -> (f64, f64) {
        tandem::window::wilson(self.clicks, self.impressions)
    }
}

/// A two-sided test's statistic and p-value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZTest {
    pub z: f64,
    pub p_value: f64,
}

/// The pooled two-proportion z-test of `b` against `a` (two-sided): z > 0 when `b`'s rate is
/// higher. With no impressions in an arm, or no variation at all, z = 0 and p = 1.
pub fn two_proportion_z_test(a: Proportion, b: Proportion) -> ZTest {
    let (na, nb) = (a.impressions as f64, b.impressions as f64);
    if a.impressions == 0 || b.impressions == 0 {
        return ZTest {
            z: 0.0,
            p_value: 1.0,
        };
    }
    let pooled = (a.clicks + b.clicks) as f64 / (na + nb);
    let se = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    if se == 0.0 {
        return ZTest {
            z: 0.0,
            p_value: 1.0,
        };
    }
    let z = (b.rate() - a.rate()) / se;
    ZTest {
        z,
        p_value: (2.0 * normal_cdf(-z.abs())).min(1.0),
    }
}

/// The relative lift of `b` over `a`, `rate_b / rate_a − 1`, with a 95% interval from the delta
/// method on the log of the ratio. `None` when either arm has no clicks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lift {
    pub relative: f64,
    pub low: f64,
    pub high: f64,
}

pub fn lift(a: Proportion, b: Proportion) -> Option<Lift> {
    if a.clicks == 0 || b.clicks == 0 {
        return None;
    }
    let (pa, pb) = (a.rate(), b.rate());
    let log_ratio = (pb / pa).ln();
    let se = ((1.0 - pa) / a.clicks as f64 + (1.0 - pb) / b.clicks as f64).sqrt();
    const Z95: f64 = 1.959_963_984_540_054;
    Some(Lift {
        relative: pb / pa - 1.0,
        low: (log_ratio - Z95 * se).exp() - 1.0,
        high: (log_ratio + Z95 * se).exp() - 1.0,
    })
}

/// What the test says, at a significance level.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    ChallengerWins { p_value: f64 },
    ChampionWins { p_value: f64 },
    NoSignificantDifference { p_value: f64 },
}

impl Decision {
    pub fn significant(&self) -> bool {
        !matches!(self, Self::NoSignificantDifference { .. })
    }
}

/// The decision for the test of the challenger (`b`) against the champion (`a`) at `alpha`.
pub fn decide(test: &ZTest, alpha: f64) -> Decision {
    let p_value = test.p_value;
    if p_value >= alpha {
        Decision::NoSignificantDifference { p_value }
    } else if test.z > 0.0 {
        Decision::ChallengerWins { p_value }
    } else {
        Decision::ChampionWins { p_value }
    }
}

/// A p-value for people: 4 decimals, or scientific notation when small.
pub fn format_p(p: f64) -> String {
    if p >= 0.0001 {
        format!("{p:.4}")
    } else {
        format!("{p:.1e}")
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::ChallengerWins { p_value } => {
                write!(f, "challenger wins (p = {})", format_p(p_value))
            }
            Self::ChampionWins { p_value } => {
                write!(f, "champion wins (p = {})", format_p(p_value))
            }
            Self::NoSignificantDifference { p_value } => {
                write!(f, "no significant difference (p = {})", format_p(p_value))
            }
        }
    }
}
