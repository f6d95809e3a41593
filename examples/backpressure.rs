//! A fast source into a slow model: JSON lines are parsed far faster than the model scores
//! them, so the bounded channels and the model's bounded intake slow the reader down instead of
//! piling records up in memory. The model is a linear scorer whose batches take
//! `--model-ms` milliseconds (a stand-in for a slow device; no real weights involved).
//!
//! ```text
//! cargo run --release --example backpressure -- --input events.jsonl --output scores.jsonl
//! ```

#[path = "common/slow_scorer.rs"]
mod slow_scorer;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use tandem::prelude::*;

use slow_scorer::{Event, Scored, SlowScorer};

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
