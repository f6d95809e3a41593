//! Fills a Redis stream with SIMULATED ad requests at a steady rate, for `ab_test --live`.
//!
//! ```text
//! redis-server --port 6379 &
//! cargo run --release --example ab_traffic -- --rate 2000 &
//! cargo run --release --example ab_test -- --live 'redis://127.0.0.1:6379/requests?group=ab&consumer=ab-1'
//! ```
//!
//! Each entry's `data` field holds one request as JSON (`{"request_id", "user_id", "time",
//! "candidates"}`), the same simulated traffic `ab_test` serves by default.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use tandem::prelude::*;
use tandem_examples::ab::sim::{self, AdRequest};

#[derive(clap::Args)]
struct TrafficArgs {
    /// The stream to fill.
    #[arg(
        long,
        value_name = "URL",
        default_value = "redis://127.0.0.1:6379/requests"
    )]
    requests: String,
    /// Requests per second (of wall-clock time); 0: as fast as the server takes them.
    #[arg(long, default_value_t = 2000)]
    rate: u64,
    /// How many requests in all.
    #[arg(long, default_value_t = tandem_examples::ab::DEFAULT_TRAFFIC)]
    traffic: u64,
    /// Seed of the simulated requests.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// Holds each request back until its moment at `rate` per second.
struct Pacer {
    rate: u64,
    start: Instant,
    sent: u64,
}

impl Pacer {
    fn wait(&mut self) {
        self.sent += 1;
        if self.rate == 0 {
            return;
        }
        let due = self.start + Duration::from_secs_f64(self.sent as f64 / self.rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
}

pipeline! {
    /// Simulated ad requests into a Redis stream, paced.
    AbTraffic(args: TrafficArgs) {
        read(Memory::new(sim::requests(args.traffic, args.seed)))
            -> inspect({
                let mut pacer = Pacer { rate: args.rate, start: Instant::now(), sent: 0 };
                move |_: &AdRequest| pacer.wait()
            })
            -> write(RedisStream::write(&args.requests).at_least_once().batch(64));
    }
}

fn main() -> ExitCode {
    AbTraffic::main()
}
