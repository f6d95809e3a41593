//! Redis stream -> parse -> map -> Redis stream: the pipeline against a hand-written loop doing
//! the same with the same crate and the same batch sizes (`XREADGROUP COUNT 1024`, pipelined
//! `XADD`s 512 at a time, `XACK` per read; `benches/common/relay.rs`), on a `redis-server` this bench starts on a free port.
//!
//! Variants: `hand_loop`; `pipeline_at_least_once` (the sink's plain `XADD`s, as the hand loop);
//! `pipeline` (the default sink: each element appended once, through a Lua script and a sorted
//! set of ids). Each round fills a fresh input stream first (not timed). The pipeline ends on
//! `until_idle(20ms)`, which adds those 20 ms to its time.
//!
//! `cargo bench --bench redis_relay` (TANDEM_BENCH_RUNS rounds, default 5, of 100,000 entries).

#[path = "../tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;
#[path = "common/relay.rs"]
mod relay;

use std::time::{Duration, Instant};

use redis::Connection;
use serde::{Deserialize, Serialize};
use tandem::prelude::*;

use redis_server::RedisServer;

const ENTRIES: u64 = 100_000;
const READ: usize = 1024;
const WRITE: usize = 512;

#[derive(Debug, Deserialize)]
struct Request {
    id: u64,
    text: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    id: u64,
    words: usize,
}

fn answer(r: Request) -> Answer {
    Answer {
        id: r.id,
        words: r.text.split_whitespace().count(),
    }
}

fn fill(conn: &mut Connection, stream: &str, n: u64) {
    for start in (1..=n).step_by(5000) {
        let mut pipe = redis::pipe();
        for id in start..(start + 5000).min(n + 1) {
            let payload = format!(
                r#"{{"id":{id},"text":"{}"}}"#,
                "word ".repeat((id % 7) as usize)
            );
            pipe.cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("data")
                .arg(payload)
                .ignore();
        }
        pipe.query::<()>(conn).unwrap();
    }
}

/// The hand loop: moves entries until a read finds none for 20 ms.
fn hand_loop(conn: &mut Connection, input: &str, output: &str) -> u64 {
    relay::create_group(conn, input);
    let mut moved = 0;
    loop {
        let entries = relay::read_group(conn, input, READ, 20);
        if entries.is_empty() {
            return moved;
        }
        moved += relay::relay(conn, input, output, &entries, WRITE, |payload| {
            let request: Request = serde_json::from_str(payload).unwrap();
            serde_json::to_vec(&answer(request)).unwrap()
        });
    }
}

struct Relay {
    input: String,
    output: String,
    exactly_once: bool,
}

pipeline! {
    RelayBench(args: Relay) {
        read(RedisStream::<Request>::read(&args.input).from_start().until_idle(Duration::from_millis(20)))
            -> map(answer)
            -> write(if args.exactly_once {
                RedisStream::write(&args.output)
            } else {
                RedisStream::write(&args.output).at_least_once()
            });
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full { ENTRIES } else { ENTRIES / 100 };
    let runs: usize = std::env::var("TANDEM_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if full { 5 } else { 1 });
    let server = RedisServer::start();
    let mut conn = server.client();
    let names = ["hand_loop", "pipeline_at_least_once", "pipeline"];
    // `TANDEM_BENCH_ONLY=NAME`: that variant alone (to profile it, e.g. under callgrind).
    let only = std::env::var("TANDEM_BENCH_ONLY").ok();
    let mut seconds = vec![Vec::new(); names.len()];
    for round in 0..runs {
        for k in 0..names.len() {
            let v = (round + k) % names.len();
            if only.as_ref().is_some_and(|o| o != names[v]) {
                continue;
            }
            let (input, output) = (format!("in-{round}-{v}"), format!("out-{round}-{v}"));
            fill(&mut conn, &input, n);
            let start = Instant::now();
            let moved = if v == 0 {
                hand_loop(&mut conn, &input, &output)
            } else {
                let relay = Relay {
                    input: server.url(&format!("{input}?group=g")),
                    output: server.url(&output),
                    exactly_once: v == 2,
                };
                let config = RunConfig {
                    batch_size: READ,
                    ..RunConfig::default()
                };
                RelayBench::run_blocking(&relay, &config)
                    .unwrap()
                    .totals()
                    .read
            };
            seconds[v].push(start.elapsed().as_secs_f64());
            assert_eq!(moved, n, "{}", names[v]);
            let written: u64 = redis::cmd("XLEN").arg(&output).query(&mut conn).unwrap();
            assert_eq!(written, n, "{}", names[v]);
            redis::cmd("FLUSHALL").query::<()>(&mut conn).unwrap();
        }
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    println!("redis_relay: {runs} rounds of {n} entries");
    for (name, s) in names.iter().zip(&seconds).filter(|(_, s)| !s.is_empty()) {
        println!(
            "  {name:<24} mean {:>8.1} ms  {:>8.0} entries/s",
            mean(s) * 1e3,
            n as f64 / mean(s)
        );
    }
    if only.is_some() {
        return;
    }
    for (name, s) in names.iter().zip(&seconds).skip(1) {
        let rounds: Vec<f64> = seconds[0].iter().zip(s).map(|(b, v)| b / v).collect();
        let low = rounds.iter().cloned().fold(f64::MAX, f64::min);
        let high = rounds.iter().cloned().fold(0.0, f64::max);
        println!(
            "ratio {name}/hand_loop = {:.2} over {runs} rounds (single rounds {low:.2} to {high:.2})",
            mean(&seconds[0]) / mean(s)
        );
    }
}
