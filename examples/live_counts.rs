//! Counts per key in fixed event-time windows, live: events come from a Redis stream through a
//! consumer group, and each window's count per key goes to another stream as the window closes.
//! Split across workers and processes (`--workers`, `--processes`), each worker folds its own
//! events and the counts of each key are merged by the worker owning the key; the input is
//! acknowledged once the windows holding it have been written (job-wide checkpoints), so a
//! process killed mid-run loses nothing: a rerun reads again what was not acknowledged.
//!
//! ```text
//! redis-server --port 6379 &
//! cargo run --example live_counts -- --events 'redis://127.0.0.1:6379/events?group=counters' --until-idle 1000
//! ```
//!
//! Each event is an entry whose `data` field holds `{"id": 1, "key": 3, "time": 1250}` (`time`:
//! its event time in milliseconds); each count goes to `--counts` as
//! `{"window": {"start": 1200, "end": 1300}, "key": 3, "value": 17}`.

use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tandem::io::RedisStreamReader;
use tandem::prelude::*;

#[derive(Clone, Debug, Deserialize, Serialize)]
struct Event {
    id: u64,
    key: u64,
    time: u64,
}

#[derive(Debug, clap::Args)]
struct CountArgs {
    /// The events stream and consumer group: `redis://HOST:PORT/STREAM?group=G&consumer=C`.
    #[arg(long)]
    events: String,
    /// Where the counts go.
    #[arg(long, default_value = "redis://127.0.0.1:6379/counts")]
    counts: String,
    /// The windows' length, in milliseconds of event time.
    #[arg(long, default_value_t = 100)]
    window_ms: u64,
    /// Work per event, in microseconds (a stand-in for a model; 0: none).
    #[arg(long, default_value_t = 0)]
    work_us: u64,
    /// End once no event has arrived for this many milliseconds (default: run until stopped).
    #[arg(long, value_name = "MS")]
    until_idle: Option<u64>,
}

impl CountArgs {
    fn source(&self) -> RedisStreamReader<Event> {
        let source = RedisStream::<Event>::read(&self.events).from_start();
        match self.until_idle {
            Some(ms) => source.until_idle(Duration::from_millis(ms)),
            None => source,
        }
    }

    fn work(&self) -> impl Fn(Event) -> Event + Send + Sync + 'static {
        let work = Duration::from_micros(self.work_us);
        move |event| {
            if !work.is_zero() {
                std::thread::sleep(work);
            }
            event
        }
    }
}

pipeline! {
    /// Counts events per key in fixed windows of event time.
    LiveCounts(args: CountArgs) {
        read(args.source())
            -> map(args.work())
            -> window(Fixed::millis(args.window_ms), |e: &Event| e.time)
            -> combine_per_key(|e: &Event| e.key, Count)
            -> write(RedisStream::write(&args.counts));
    }
}

fn main() -> ExitCode {
    LiveCounts::main()
}
