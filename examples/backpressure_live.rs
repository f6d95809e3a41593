//! `backpressure` on live traffic: events wait on a Redis stream, far more than a deliberately
//! slow model can score at once. The source reads through a consumer group only as fast as the
//! model takes its batches (the bounded queues hold it back), so the group's pending list (read,
//! not yet acknowledged) holds what the queues hold plus about one checkpoint interval of
//! entries — never the backlog — and memory stays flat however long the stream.
//!
//! ```text
//! redis-server --port 6379 &
//! cargo run --example backpressure_live -- --events 'redis://127.0.0.1:6379/events?group=scorer'
//! ```
//!
//! Each event is one entry whose `data` field holds `{"id": 1, "features": [16 numbers]}`; each
//! score goes to `--scores` as `{"id": 1, "score": 0.3, "model": "slow-linear-v1"}`.

use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tandem::io::RedisStreamReader;
use tandem::prelude::*;

/// The model's batches: the test of this example derives its bound on pending entries from it.
const MAX_BATCH: usize = 64;

#[derive(Debug, clap::Args)]
struct LiveArgs {
    /// The events stream and consumer group: `redis://HOST:PORT/STREAM?group=G&consumer=C`.
    #[arg(long)]
    events: String,
    /// Where the scores go.
    #[arg(long, default_value = "redis://127.0.0.1:6379/scores")]
    scores: String,
    /// How long the model takes per batch (of up to 64 events), in milliseconds.
    #[arg(long, default_value_t = 5)]
    model_ms: u64,
    /// End once no event has arrived for this many milliseconds (default: run until stopped).
    #[arg(long, value_name = "MS")]
    until_idle: Option<u64>,
}

impl LiveArgs {
    fn source(&self) -> RedisStreamReader<Event> {
        let source = RedisStream::<Event>::read(&self.events).from_start();
        match self.until_idle {
            Some(ms) => source.until_idle(Duration::from_millis(ms)),
            None => source,
        }
    }
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

/// A linear model over the features, slowed to `delay` per batch (a stand-in for a slow device;
/// no real weights involved).
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

pipeline! {
    /// Scores live events with a deliberately slow model; the reader waits for it.
    BackpressureLive(args: LiveArgs) {
        read(args.source())
            -> run_inference(SlowScorer { delay: Duration::from_millis(args.model_ms) })
            -> map(|p| Scored { id: p.example.id, score: p.inference, model: p.model_id })
            -> write(RedisStream::write(&args.scores));
    }
}

fn main() -> ExitCode {
    BackpressureLive::main()
}
