//! A fast source into a slow model: JSON lines are parsed far faster than the model scores
//! them, so the bounded channels and the model's bounded intake slow the reader down instead of
//! piling records up in memory. The model is a linear scorer whose batches take
//! `--model-ms` milliseconds (a stand-in for a slow device; no real weights involved).
//!
//! ```text
//! cargo run --release --example backpressure -- --input events.jsonl --output scores.jsonl
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tandem::prelude::*;

#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// Events, one JSON object per line (`{"id":..,"features":[..]}`).
    #[arg(long = "events")]
    events: PathBuf,
    /// Where the scores go.
    #[arg(long = "scores", default_value = "scores.jsonl")]
    scores: PathBuf,
    /// How long the model takes per batch, in milliseconds.
    #[arg(long, default_value_t = 1)]
    model_ms: u64,
}

#[derive(Debug, Deserialize)]
struct Event {
    id: u64,
    features: Vec<f32>,
}

#[derive(Debug, Serialize)]
struct Scored {
    id: u64,
    score: f32,
    model: std::sync::Arc<str>,
}

/// A linear model over the features, slowed to `delay` per batch.
struct SlowScorer {
    delay: Duration,
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
            max_batch: 64,
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

pipeline! {
    /// Scores events with a deliberately slow model; memory stays bounded however large the input.
    Backpressure(args: LoadArgs) {
        read(JsonLines::<Event>::open(&args.events))
            -> run_inference(SlowScorer { delay: Duration::from_millis(args.model_ms) })
            -> map(|p| Scored { id: p.example.id, score: p.inference, model: p.model_id })
            -> write(JsonLines::create(&args.scores));
    }
}

fn main() -> ExitCode {
    Backpressure::main()
}
