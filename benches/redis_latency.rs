//! Live latency and the cost of checkpoints, on a `redis-server` this bench starts on a free
//! port.
//!
//! **Latency**: a producer `XADD`s requests at a steady rate (1,000 and 10,000 per second, in
//! 1-ms ticks), each carrying its send time in microseconds; the relay (Redis stream -> parse ->
//! map -> Redis stream, the default exactly-once sink, the default 1-s checkpoint interval)
//! copies it into its answer; a reader blocked on the output stream (`XREAD BLOCK`) takes each
//! answer's latency as its arrival time minus that send time: from `XADD` to the output entry,
//! as a client of the output sees it. The anchor is a hand-written loop (`XREADGROUP COUNT 1024
//! BLOCK 1`, pipelined `XADD`s, `XACK` per read) on the same traffic.
//!
//! **Checkpoints**: the relay's throughput on 100,000 entries with a checkpoint every 100 ms
//! against every 1 s (alternated, `TANDEM_BENCH_RUNS` rounds, default 5).
//!
//! `cargo bench --bench redis_latency` (`cargo test --benches` runs a short smoke version).

#[path = "../tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;
#[path = "common/relay.rs"]
mod relay;

use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Connection;
use serde::{Deserialize, Serialize};
use tandem::checkpoint::CheckpointPolicy;
use tandem::prelude::*;

use redis_server::RedisServer;

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    id: u64,
    sent_us: u64,
    text: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Answer {
    id: u64,
    sent_us: u64,
    words: usize,
}

fn answer(r: Request) -> Answer {
    Answer {
        id: r.id,
        sent_us: r.sent_us,
        words: r.text.split_whitespace().count(),
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn payload(id: u64, sent_us: u64) -> String {
    format!(
        r#"{{"id":{id},"sent_us":{sent_us},"text":"{}"}}"#,
        "word ".repeat((id % 7) as usize)
    )
}

/// `XADD`s `n` requests to `stream` at `rate` per second, in 1-ms ticks.
fn produce(conn: &mut Connection, stream: &str, n: u64, rate: u64) {
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        let due = ((start.elapsed().as_secs_f64() * rate as f64) as u64).min(n);
        if due > sent {
            let mut pipe = redis::pipe();
            for id in sent + 1..=due {
                pipe.cmd("XADD")
                    .arg(stream)
                    .arg("*")
                    .arg("data")
                    .arg(payload(id, now_us()))
                    .ignore();
            }
            pipe.query::<()>(conn).unwrap();
            sent = due;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

type Reply = Vec<(String, Vec<relay::Entry>)>;

/// Reads `n` answers from `stream` as they come; returns each one's latency in microseconds.
fn collect(conn: &mut Connection, stream: &str, n: usize) -> Vec<u64> {
    let mut latencies = Vec::with_capacity(n);
    let mut last = "0".to_owned();
    let deadline = Instant::now() + Duration::from_secs(120);
    while latencies.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} answers",
            latencies.len()
        );
        let reply: Option<Reply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(4096)
            .arg("BLOCK")
            .arg(100)
            .arg("STREAMS")
            .arg(stream)
            .arg(&last)
            .query(conn)
            .unwrap();
        let Some(entries) = reply.and_then(|mut r| r.pop()).map(|(_, e)| e) else {
            continue;
        };
        let arrived = now_us();
        for (id, fields) in entries {
            let answer: Answer = serde_json::from_str(&fields[0].1).unwrap();
            latencies.push(arrived.saturating_sub(answer.sent_us));
            last = id;
        }
    }
    latencies
}

/// The hand-written relay: runs until it moved `n` entries.
fn hand_loop(conn: &mut Connection, input: &str, output: &str, n: u64) {
    relay::create_group(conn, input);
    let mut moved = 0;
    while moved < n {
        let entries = relay::read_group(conn, input, 1024, 1);
        moved += relay::relay(conn, input, output, &entries, 512, |payload| {
            let request: Request = serde_json::from_str(payload).unwrap();
            serde_json::to_vec(&answer(request)).unwrap()
        });
    }
}

struct Relay {
    input: String,
    output: String,
    idle: Duration,
}

pipeline! {
    LiveRelay(args: Relay) {
        read(RedisStream::<Request>::read(&args.input).from_start().until_idle(args.idle))
            -> map(answer)
            -> write(RedisStream::write(&args.output));
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[at] as f64 / 1e3
}

/// One latency run: the relay (`hand` or the pipeline) started, then the traffic; the answers'
/// latencies, sorted.
fn latency(server: &RedisServer, tag: &str, hand: bool, rate: u64, n: u64) -> Vec<u64> {
    let (input, output) = (format!("lin-{tag}"), format!("lout-{tag}"));
    let (done_tx, done_rx) = mpsc::channel();
    let relay = {
        let (url_in, url_out) = (server.url(&format!("{input}?group=g")), server.url(&output));
        let (input, output) = (input.clone(), output.clone());
        let mut conn = server.client();
        std::thread::spawn(move || {
            if hand {
                hand_loop(&mut conn, &input, &output, n);
            } else {
                let relay = Relay {
                    input: url_in,
                    output: url_out,
                    idle: Duration::from_millis(500),
                };
                let config = RunConfig {
                    batch_size: 1024,
                    ..RunConfig::default()
                };
                let read = LiveRelay::run_blocking(&relay, &config)
                    .unwrap()
                    .totals()
                    .read;
                assert_eq!(read, n);
            }
            done_tx.send(()).unwrap();
        })
    };
    // Let the relay start and block on the empty stream first.
    std::thread::sleep(Duration::from_millis(300));
    let collector = {
        let mut conn = server.client();
        let output = output.clone();
        std::thread::spawn(move || collect(&mut conn, &output, n as usize))
    };
    produce(&mut server.client(), &input, n, rate);
    let mut latencies = collector.join().unwrap();
    done_rx.recv().unwrap();
    relay.join().unwrap();
    latencies.sort_unstable();
    latencies
}

fn fill(conn: &mut Connection, stream: &str, n: u64) {
    for start in (1..=n).step_by(5000) {
        let mut pipe = redis::pipe();
        for id in start..(start + 5000).min(n + 1) {
            pipe.cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("data")
                .arg(payload(id, 0))
                .ignore();
        }
        pipe.query::<()>(conn).unwrap();
    }
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runs: usize = std::env::var("TANDEM_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if full { 5 } else { 1 });
    let seconds = if full { 10 } else { 1 };
    let server = RedisServer::start();
    let mut conn = server.client();

    println!("redis_latency: from XADD to the output entry, {seconds} s of traffic per run");
    for rate in [1_000u64, 10_000] {
        let n = rate * seconds;
        for (name, hand) in [("hand_loop", true), ("pipeline", false)] {
            let latencies = latency(&server, &format!("{rate}-{name}"), hand, rate, n);
            println!(
                "  {rate:>6}/s {name:<10} p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  ({n} answers)",
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
                percentile(&latencies, 1.0),
            );
            redis::cmd("FLUSHALL").query::<()>(&mut conn).unwrap();
        }
    }

    let n = if full { 100_000 } else { 2_000 };
    let intervals = [Duration::from_millis(100), Duration::from_secs(1)];
    let mut secs = [Vec::new(), Vec::new()];
    for round in 0..runs {
        for k in 0..2 {
            let v = (round + k) % 2;
            let (input, output) = (format!("cin-{round}-{v}"), format!("cout-{round}-{v}"));
            fill(&mut conn, &input, n);
            let relay = Relay {
                input: server.url(&format!("{input}?group=g")),
                output: server.url(&output),
                idle: Duration::from_millis(20),
            };
            let config = RunConfig {
                batch_size: 1024,
                checkpoints: CheckpointPolicy {
                    interval: Some(intervals[v]),
                    every: None,
                },
                ..RunConfig::default()
            };
            let start = Instant::now();
            let read = LiveRelay::run_blocking(&relay, &config)
                .unwrap()
                .totals()
                .read;
            secs[v].push(start.elapsed().as_secs_f64());
            assert_eq!(read, n);
            let written: u64 = redis::cmd("XLEN").arg(&output).query(&mut conn).unwrap();
            assert_eq!(written, n);
            redis::cmd("FLUSHALL").query::<()>(&mut conn).unwrap();
        }
    }
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    println!("checkpoint cost: {runs} rounds of {n} entries");
    for (interval, s) in intervals.iter().zip(&secs) {
        println!(
            "  every {:>6?}  mean {:>8.1} ms  {:>8.0} entries/s",
            interval,
            mean(s) * 1e3,
            n as f64 / mean(s)
        );
    }
    println!(
        "ratio throughput(100ms)/throughput(1s) = {:.2} over {runs} rounds",
        mean(&secs[1]) / mean(&secs[0])
    );
}
