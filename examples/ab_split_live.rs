//! `ab_split` on live traffic: ad requests arrive on a Redis stream, are split 50/50 by user
//! between a champion and a challenger policy, and what each arm served goes out to another
//! stream, with the number served per arm per 10-second window (of the requests' own time) to a
//! third. It runs until SIGINT/SIGTERM (or, with `--until-idle`, until the stream has been quiet
//! that long), acknowledging the requests at each checkpoint; killed and started again, it
//! resumes where its last checkpoint left off and writes nothing twice.
//!
//! ```text
//! redis-server --port 6379 &
//! cargo run --example ab_split_live -- --requests 'redis://127.0.0.1:6379/requests?group=ab&consumer=ab-1'
//! ```
//!
//! Each request is one entry whose `data` field holds
//! `{"request_id": 1, "user_id": 7, "ad_id": 3, "score": 0.4, "time": 1700000000000}`.

use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tandem::prelude::*;

#[derive(Debug, clap::Args)]
struct LiveArgs {
    /// The requests stream and consumer group: `redis://HOST:PORT/STREAM?group=G&consumer=C`.
    #[arg(long)]
    requests: String,
    /// Where what each arm served goes.
    #[arg(long, default_value = "redis://127.0.0.1:6379/served")]
    served: String,
    /// Where the number served per arm per window goes.
    #[arg(long, default_value = "redis://127.0.0.1:6379/served-per-window")]
    counts: String,
    /// End once no request has arrived for this many milliseconds (default: run until stopped).
    #[arg(long, value_name = "MS")]
    until_idle: Option<u64>,
}

impl LiveArgs {
    fn source(&self) -> RedisStreamReaderOf<AdRequest> {
        let source = RedisStream::<AdRequest>::read(&self.requests).from_start();
        match self.until_idle {
            Some(ms) => source.until_idle(Duration::from_millis(ms)),
            None => source,
        }
    }
}

type RedisStreamReaderOf<T> = tandem::io::RedisStreamReader<T>;

#[derive(Clone, Debug, Deserialize)]
struct AdRequest {
    request_id: u64,
    user_id: u64,
    ad_id: u32,
    score: f64,
    time: u64,
}

#[derive(Clone, Debug, Serialize)]
struct Served {
    request_id: u64,
    arm: &'static str,
    user_id: u64,
    ad_id: u32,
    bid: f64,
    time: u64,
}

fn champion(r: AdRequest) -> Served {
    Served {
        request_id: r.request_id,
        arm: "champion",
        user_id: r.user_id,
        ad_id: r.ad_id,
        bid: r.score,
        time: r.time,
    }
}

fn challenger(r: AdRequest) -> Served {
    let shade = if r.ad_id.is_multiple_of(4) { 0.8 } else { 1.0 };
    Served {
        arm: "challenger",
        bid: r.score * shade,
        ..champion(r)
    }
}

pipeline! {
    /// Sticky 50/50 split of live ad requests between a champion and a challenger policy.
    AbSplitLive(args: LiveArgs) {
        [champ, chall] = read(args.source())
            -> partition(split_by(|r: &AdRequest| r.user_id, [50, 50]));
        a = champ -> map(champion);
        b = chall -> map(challenger);
        served = merge(a, b);
        served -> write(RedisStream::write(&args.served));
        served
            -> window(Fixed::seconds(10), |s: &Served| s.time)
            -> combine_per_key(|s: &Served| s.arm.to_string(), Count)
            -> write(RedisStream::write(&args.counts));
    }
}

fn main() -> ExitCode {
    AbSplitLive::main()
}
