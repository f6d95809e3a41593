//! The A/B story of `ab_test`: a SIMULATED ad market (its users, ads and click model: [`sim`]),
//! two Burn rankers trained here on a simulated impression log ([`ranker`]), the pipeline that
//! splits simulated traffic between them ([`pipeline`]), and the report's statistics
//! ([`stats`], [`report`]) and chart ([`chart`]). No number here comes from real users.

pub mod chart;
pub mod live;
pub mod pipeline;
pub mod ranker;
pub mod report;
pub mod sequential;
pub mod sim;
pub mod stats;

pub use pipeline::{AbArgs, AbTest, Click, Served, Tally, DEFAULT_TRAFFIC};
pub use ranker::{ensure_trained, train, Ranker, RankerKind, TrainConfig, TrainReport};
pub use report::AbReport;
pub use stats::{decide, lift, normal_cdf, two_proportion_z_test, Decision, Proportion};
