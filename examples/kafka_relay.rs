//! A live relay on Kafka: requests read from a topic through a consumer group, answered, and
//! written to another topic, with offsets committed at checkpoints. It is the pipeline that
//! `tests/kafka.rs` kills and restarts (against librdkafka's mock cluster); point it at your own
//! cluster with `--servers host:9092`. Uses the `kafka` feature, which the facade's
//! dev-dependencies turn on for its tests and examples.
//!
//! ```text
//! cargo run --example kafka_relay -- --servers 127.0.0.1:9092
//! ```

use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tandem::prelude::*;

#[derive(Debug, clap::Args)]
struct RelayArgs {
    /// The cluster's bootstrap servers, `host:port[,host:port]`.
    #[arg(long)]
    servers: String,
    /// End once no request has arrived for this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    until_idle: u64,
    /// Microseconds of work per request (so that a test can stop a run in the middle).
    #[arg(long, value_name = "US", default_value_t = 0)]
    work: u64,
}

#[derive(Debug, Deserialize)]
struct Request {
    id: u64,
    text: String,
}

#[derive(Debug, Serialize)]
struct Answer {
    id: u64,
    words: usize,
}

pipeline! {
    /// Requests from `requests` (group `live`), answered into `answers`.
    KafkaRelay(args: RelayArgs) {
        read(tandem::io::Kafka::<Request>::read(format!("kafka://{}/requests?group=live", args.servers))
                .from_start()
                .until_idle(Duration::from_millis(args.until_idle))
                // A killed member leaves the group only when its session times out: a restarted
                // one waits for that before it is given partitions.
                .config("session.timeout.ms", "3000")
                .config("heartbeat.interval.ms", "500"))
            -> map(|r: Request| {
                std::thread::sleep(Duration::from_micros(args.work));
                Answer { id: r.id, words: r.text.split_whitespace().count() }
            })
            -> write(tandem::io::Kafka::write(format!("kafka://{}/answers", args.servers)));
    }
}

fn main() -> ExitCode {
    KafkaRelay::main()
}
