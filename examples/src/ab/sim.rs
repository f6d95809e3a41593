//! The simulated ad market: users, ads, the click model, the simulated traffic and the simulated
//! impression log the rankers learn from. Nothing here is real data.
//!
//! # The simulated click model
//!
//! - **Users** (any `u64` id; the traffic draws them from `0..USERS`) have an age bucket
//!   (4, uniform) and an interest vector over the 6 ad categories: one favourite category, uniform,
//!   and weights `w_c = E_c + 3·[c = favourite]` with `E_c ~ Exp(1)`, normalised to sum to 1. A
//!   user's attributes are a hash of the id and [`WORLD_SEED`], so they are the same in every run.
//! - **Ads** (`ADS` of them, ids `0..ADS`) have a category (uniform), a quality `q ~ N(0, 0.4²)` and
//!   a target age bucket (uniform), drawn once from [`WORLD_SEED`].
//! - **Clicks**: a user shown an ad clicks with probability
//!
//!   ```text
//!   p(click | user, ad) = σ(−3 + q_ad + 2·interest_user[category_ad] + 0.4·[age_user = target_ad])
//!   ```
//!
//!   The interest term is an interaction of a user feature and an ad feature. A model linear in
//!   the raw features (the champion) adds a user part and an ad part, so among the candidates of
//!   one request it can only rank ads by their appeal to everyone (quality, category, target); a
//!   model with the feature crosses (the challenger) can rank by what this user likes.
//!
//! The simulated traffic (requests: a user, a time, `CANDIDATES` distinct ads) and the clicks on
//! served ads are drawn from a seed, and each click from a random number derived from the seed and
//! the request id alone, so a run's results do not depend on thread timing. The training log is
//! drawn from its own fixed seeds (see [`impression_log`]): changing the traffic seed changes the
//! traffic, not the market or the rankers.

use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The ad categories of the simulated market.
pub const CATEGORIES: [&str; 6] = ["sports", "travel", "tech", "fashion", "food", "finance"];
/// The age buckets of the simulated users.
pub const AGE_BUCKETS: [&str; 4] = ["18-24", "25-34", "35-49", "50+"];
/// Ads in the simulated market (ids `0..ADS`).
pub const ADS: u32 = 200;
/// Users the simulated traffic draws from (ids `0..USERS`).
pub const USERS: u64 = 20_000;
/// Candidate ads per simulated request.
pub const CANDIDATES: usize = 10;
/// The simulated traffic spans one hour of event time (milliseconds from its start).
pub const SPAN_MS: u64 = 3_600_000;
/// The seed of the simulated market: its ads and its users' attributes.
pub const WORLD_SEED: u64 = 0x7a6e_d3a1_2024_0b01;

const BASE_LOGIT: f64 = -3.0;
const INTEREST_WEIGHT: f64 = 2.0;
const AGE_MATCH_WEIGHT: f64 = 0.4;
const QUALITY_SD: f64 = 0.4;
const FAVOURITE_BOOST: f64 = 3.0;

const REQUEST_SALT: u64 = 0x5eed_0000_0000_0001;
const CLICK_SALT: u64 = 0x5eed_0000_0000_0002;

/// A simulated user's attributes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct User {
    pub age: usize,
    /// Interest in each category; sums to 1.
    pub interest: [f32; CATEGORIES.len()],
}

/// A simulated ad.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ad {
    pub id: u32,
    pub category: usize,
    pub quality: f32,
    pub target_age: usize,
}

/// SplitMix64's finaliser: a well-mixed 64-bit hash of a 64-bit value.
pub fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)` from a hash.
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The simulated user with this id (the same in every run).
pub fn user(id: u64) -> User {
    let mut state = mix(WORLD_SEED ^ mix(id));
    let mut next = || {
        state = mix(state);
        state
    };
    let age = (next() % AGE_BUCKETS.len() as u64) as usize;
    let favourite = (next() % CATEGORIES.len() as u64) as usize;
    let mut weights = [0.0f64; CATEGORIES.len()];
    for (c, w) in weights.iter_mut().enumerate() {
        *w = -(1.0 - unit(next())).ln();
        if c == favourite {
            *w += FAVOURITE_BOOST;
        }
    }
    let total: f64 = weights.iter().sum();
    User {
        age,
        interest: weights.map(|w| (w / total) as f32),
    }
}

/// The simulated market's ads, drawn once from [`WORLD_SEED`].
pub fn ads() -> &'static [Ad] {
    static ADS_TABLE: OnceLock<Vec<Ad>> = OnceLock::new();
    ADS_TABLE.get_or_init(|| {
        let mut rng = StdRng::seed_from_u64(WORLD_SEED);
        (0..ADS)
            .map(|id| Ad {
                id,
                category: rng.random_range(0..CATEGORIES.len()),
                quality: (standard_normal(&mut rng) * QUALITY_SD) as f32,
                target_age: rng.random_range(0..AGE_BUCKETS.len()),
            })
            .collect()
    })
}

/// The ad with this id, if the simulated market has it.
pub fn ad(id: u32) -> Option<&'static Ad> {
    ads().get(id as usize)
}

/// Box–Muller.
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// The simulated click model: the probability that `user` clicks `ad` when shown it.
pub fn click_probability(user: &User, ad: &Ad) -> f64 {
    let logit = BASE_LOGIT
        + f64::from(ad.quality)
        + INTEREST_WEIGHT * f64::from(user.interest[ad.category])
        + AGE_MATCH_WEIGHT * f64::from(u8::from(user.age == ad.target_age));
    1.0 / (1.0 + (-logit).exp())
}

/// A simulated ad request: a user, an event time, and the candidate ads to rank.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdRequest {
    pub request_id: u64,
    pub user_id: u64,
    /// Event time, milliseconds from the start of the simulated traffic.
    pub time: u64,
    pub candidates: Vec<u32>,
}

/// `traffic` simulated requests spread evenly over [`SPAN_MS`], in time order; users uniform in
/// `0..USERS`, `CANDIDATES` distinct ads each, uniform.
pub fn requests(traffic: u64, seed: u64) -> SimulatedRequests {
    SimulatedRequests {
        rng: StdRng::seed_from_u64(mix(seed ^ REQUEST_SALT)),
        next: 0,
        traffic,
    }
}

/// See [`requests`].
pub struct SimulatedRequests {
    rng: StdRng,
    next: u64,
    traffic: u64,
}

impl Iterator for SimulatedRequests {
    type Item = AdRequest;

    fn next(&mut self) -> Option<AdRequest> {
        if self.next >= self.traffic {
            return None;
        }
        let id = self.next;
        self.next += 1;
        // Each request at a random time within its own slot: in order, and evenly spread.
        let slot_start = id * SPAN_MS / self.traffic;
        let slot_end = ((id + 1) * SPAN_MS / self.traffic).max(slot_start + 1);
        let time = self.rng.random_range(slot_start..slot_end);
        let user_id = self.rng.random_range(0..USERS);
        let mut candidates = Vec::with_capacity(CANDIDATES);
        while candidates.len() < CANDIDATES {
            let ad = self.rng.random_range(0..ADS);
            if !candidates.contains(&ad) {
                candidates.push(ad);
            }
        }
        Some(AdRequest {
            request_id: id,
            user_id,
            time,
            candidates,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.traffic - self.next) as usize;
        (left, Some(left))
    }
}

/// Whether the user of request `request_id` clicks an ad it clicks with probability `p`, in the
/// simulated traffic of `seed`: the same answer whatever thread asks, whenever.
pub fn simulated_click(seed: u64, request_id: u64, p: f64) -> bool {
    unit(mix(mix(seed ^ CLICK_SALT) ^ request_id)) < p
}

/// One row of the simulated impression log: a random ad shown to a user, and whether they clicked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Impression {
    pub user_id: u64,
    pub ad_id: u32,
    pub clicked: bool,
}

/// A simulated impression log of `rows` rows: users uniform in `0..USERS`, one ad uniform among
/// all ads (a random, exploring policy), the click drawn from the click model.
pub fn impression_log(rows: usize, seed: u64) -> Vec<Impression> {
    let mut rng = StdRng::seed_from_u64(mix(seed));
    (0..rows)
        .map(|_| {
            let user_id = rng.random_range(0..USERS);
            let ad_id = rng.random_range(0..ADS);
            let p = click_probability(&user(user_id), &ads()[ad_id as usize]);
            Impression {
                user_id,
                ad_id,
                clicked: rng.random::<f64>() < p,
            }
        })
        .collect()
}

/// Features of the champion: the raw user and ad features, no crosses.
/// Age one-hot (4), interests (6), category one-hot (6), quality (1), target age one-hot (4).
pub const RAW_FEATURES: usize = 2 * AGE_BUCKETS.len() + 2 * CATEGORIES.len() + 1;
/// Features of the challenger: the raw ones, interest × category one-hot (36) and age one-hot ×
/// target age one-hot (16).
pub const CROSSED_FEATURES: usize =
    RAW_FEATURES + CATEGORIES.len() * CATEGORIES.len() + AGE_BUCKETS.len() * AGE_BUCKETS.len();

/// Appends the [`RAW_FEATURES`] of a user and an ad.
pub fn raw_features(user: &User, ad: &Ad, out: &mut Vec<f32>) {
    out.extend((0..AGE_BUCKETS.len()).map(|a| f32::from(u8::from(a == user.age))));
    out.extend_from_slice(&user.interest);
    out.extend((0..CATEGORIES.len()).map(|c| f32::from(u8::from(c == ad.category))));
    out.push(ad.quality);
    out.extend((0..AGE_BUCKETS.len()).map(|a| f32::from(u8::from(a == ad.target_age))));
}

/// Appends the [`CROSSED_FEATURES`] of a user and an ad.
pub fn crossed_features(user: &User, ad: &Ad, out: &mut Vec<f32>) {
    raw_features(user, ad, out);
    for interest in user.interest {
        out.extend((0..CATEGORIES.len()).map(|c| if c == ad.category { interest } else { 0.0 }));
    }
    for a in 0..AGE_BUCKETS.len() {
        let is_age = a == user.age;
        out.extend(
            (0..AGE_BUCKETS.len()).map(|t| f32::from(u8::from(is_age && t == ad.target_age))),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_ads_are_fixed_and_well_formed() {
        assert_eq!(user(42), user(42));
        assert_ne!(user(42), user(43));
        let sum: f32 = user(7).interest.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5);
        assert_eq!(ads().len(), ADS as usize);
        assert!(ad(ADS).is_none());
    }

    #[test]
    fn requests_are_in_time_order_with_distinct_candidates() {
        let all: Vec<_> = requests(1000, 3).collect();
        assert_eq!(all.len(), 1000);
        assert!(all.windows(2).all(|w| w[0].time <= w[1].time));
        assert!(all.last().unwrap().time < SPAN_MS);
        for r in &all {
            let mut c = r.candidates.clone();
            c.sort_unstable();
            c.dedup();
            assert_eq!(c.len(), CANDIDATES);
        }
        assert_eq!(all, requests(1000, 3).collect::<Vec<_>>());
    }

    #[test]
    fn features_have_their_sizes() {
        let (u, a) = (user(1), ads()[0]);
        let (mut raw, mut crossed) = (Vec::new(), Vec::new());
        raw_features(&u, &a, &mut raw);
        crossed_features(&u, &a, &mut crossed);
        assert_eq!(raw.len(), RAW_FEATURES);
        assert_eq!(crossed.len(), CROSSED_FEATURES);
        assert_eq!(crossed[..RAW_FEATURES], raw[..]);
    }
}
