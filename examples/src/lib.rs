//! What the model examples share: the simulated ad market and the rankers of `ab_test`, the
//! statistics of its report and its chart, and the vision helpers of `cascade`, `image_search`
//! and `shadow`.

pub mod ab;
pub mod vision;
