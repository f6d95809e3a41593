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

#[path = "common/slow_scorer.rs"]
mod slow_scorer;

use std::process::ExitCode;
use std::time::Duration;

use tandem::io::RedisStreamReader;
use tandem::prelude::*;

use slow_scorer::{Event, Scored, SlowScorer};

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
