//! The deliberately slow model of the `backpressure` and `backpressure_live` examples: a linear
//! scorer over 16 features whose batches (of up to `MAX_BATCH`) take `delay` each. Included
//! with `#[path = "common/slow_scorer.rs"] mod slow_scorer;`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tandem::prelude::*;

/// The model's batches: the test of `backpressure_live` derives its bound on pending entries
/// from it.
pub const MAX_BATCH: usize = 64;

#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: u64,
    pub features: Vec<f32>,
}

#[derive(Debug, Serialize)]
pub struct Scored {
    pub id: u64,
    pub score: f32,
    pub model: std::sync::Arc<str>,
}

/// A linear model over the features, slowed to `delay` per batch (a stand-in for a slow device;
/// no real weights involved).
pub struct SlowScorer {
    pub delay: Duration,
}

impl ModelHandler for SlowScorer {
    type Input = Event;
    type Prepared = Vec<f32>;
    type Inference = f32;
    type Model = Vec<f32>;

    fn name(&self) -> String {
        "slow-linear".into()
    }

    fn batching(&self) -> Batching {
        Batching {
            max_batch: MAX_BATCH,
            ..Batching::default()
        }
    }

    fn load(&self, _: DeviceRequest) -> Result<Loaded<Vec<f32>>, String> {
        let weights = (0..16).map(|i| (i as f32 - 7.5) / 8.0).collect();
        Ok(Loaded::new(weights, "cpu (plain Rust)", "slow-linear-v1"))
    }

    fn prepare(&self, event: &Event) -> Result<Vec<f32>, String> {
        if event.features.len() != 16 {
            return Err(format!(
                "{} features, the model takes 16",
                event.features.len()
            ));
        }
        Ok(event.features.clone())
    }

    fn infer(&self, weights: &mut Vec<f32>, batch: Vec<Vec<f32>>) -> Result<Vec<f32>, String> {
        std::thread::sleep(self.delay);
        Ok(batch
            .iter()
            .map(|x| x.iter().zip(weights.iter()).map(|(a, b)| a * b).sum())
            .collect())
    }
}
