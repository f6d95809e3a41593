//! Backpressure on live traffic: the `backpressure_live` example reads a backlog from a real
//! redis-server through a consumer group into a model far slower than the reader. The reader is
//! held back by the bounded queues, so the group's pending list (entries read and not yet
//! acknowledged) stays within what the queues hold plus one checkpoint interval of entries,
//! far below the backlog; the example's peak RSS for ten times more entries stays within 1.5
//! times; every entry is scored, and nothing is pending at the end.
#![cfg(target_os = "linux")]

mod common;
#[path = "common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Duration;

use redis::Connection;

use common::{example_binary, peak_rss_of};
use redis_server::RedisServer;

/// The smaller backlog; the larger is ten times this.
const N: u64 = 10_000;

// What bounds the pending list. Entries are pending from the `XREADGROUP` that delivers them to
// the `XACK` of the first complete checkpoint after them. At any moment, with `c` the last
// complete checkpoint, the pending entries are those read after barrier `c`: the ones still
// inside the pipeline (at most C) and the ones that reached the sink before barrier `c + 1`
// did (at most the entries read between the two barriers).
//
// C, the entries inside the pipeline, from the queues' real sizes:
//   B            the source's current chunk, delivered by one XREADGROUP (`--batch-size`)
//   M            the model front's partial batch
//   Q·M          the model's intake: Q pieces of at most M (`RunConfig::channel_capacity`)
//   4·M          in the dispatcher: one cut batch waiting (it reads no more input while one
//                waits), one partial group, one batch on the replica, one being sent on
//   Q·M          the model's results channel: Q batches
//   M + W        the batch the sink's segment is pushing, and the sink's unsent entries (W per
//                pipelined XADD, `DEFAULT_WRITE_BATCH`)
//   C = B + W + (2Q + 6)·M
//
// Entries read between two barriers: a source sends a barrier after the first chunk that ends
// once the interval I has passed, so barriers are at most I plus one chunk's time apart; in that
// time the reader gets at most what the model scored (T·I + B, with T ≤ M / MODEL_MS: one
// replica sleeping MODEL_MS per batch) plus what the pipeline took in (at most C).
//
// So pending ≤ 2·C + T·I + B.
const B: u64 = 1024;
const M: u64 = 64; // `MAX_BATCH` in examples/common/slow_scorer.rs
const Q: u64 = 16;
const W: u64 = 512;
const MODEL_MS: u64 = 5;
const INTERVAL_MS: u64 = 200;
const IN_PIPELINE: u64 = B + W + (2 * Q + 6) * M;
const PENDING_BOUND: u64 = 2 * IN_PIPELINE + M * INTERVAL_MS / MODEL_MS + B;

fn add_events(conn: &mut Connection, stream: &str, n: u64) {
    let ids: Vec<u64> = (0..n).collect();
    for chunk in ids.chunks(2000) {
        let mut pipe = redis::pipe();
        for &id in chunk {
            let features: Vec<String> = (0..16)
                .map(|i| format!("{:.4}", ((id * 31 + i * 7) % 1000) as f64 / 1000.0))
                .collect();
            pipe.cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("data")
                .arg(format!(
                    "{{\"id\":{id},\"features\":[{}]}}",
                    features.join(",")
                ))
                .ignore();
        }
        pipe.query::<()>(conn).unwrap();
    }
}

/// The group's pending count (`XPENDING` summary); 0 before the group exists.
fn pending(conn: &mut Connection, stream: &str) -> u64 {
    let summary: redis::RedisResult<Vec<redis::Value>> =
        redis::cmd("XPENDING").arg(stream).arg("scorer").query(conn);
    match summary.as_deref() {
        Ok([redis::Value::Int(n), ..]) => *n as u64,
        Err(e) if e.code() == Some("NOGROUP") => 0,
        other => panic!("unexpected XPENDING reply {other:?}"),
    }
}

/// The `id` of every score written to `stream`.
fn scored_ids(conn: &mut Connection, stream: &str) -> Vec<u64> {
    let all: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(conn)
        .unwrap();
    all.into_iter()
        .map(|(_, fields)| {
            let score: serde_json::Value = serde_json::from_str(&fields[0].1).unwrap();
            score["id"].as_u64().unwrap()
        })
        .collect()
}

struct Measured {
    peak_rss: u64,
    most_pending: u64,
}

/// Runs the example on a backlog of `n` events; samples the group's pending count while it runs.
fn run(server: &RedisServer, dir: &Path, n: u64) -> Measured {
    let (events, scores) = (format!("events-{n}"), format!("scores-{n}"));
    let mut conn = server.client();
    add_events(&mut conn, &events, n);
    let stderr = dir.join(format!("stderr-{n}.txt"));
    let dead_letters = dir.join(format!("dead-letters-{n}.jsonl"));
    let done = AtomicBool::new(false);
    let (peak_rss, (most_pending, samples)) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut conn = server.client();
            let (mut most, mut samples) = (0, 0u64);
            while !done.load(Relaxed) {
                most = most.max(pending(&mut conn, &events));
                samples += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            (most, samples)
        });
        let peak_rss = peak_rss_of(
            Command::new(example_binary("backpressure_live"))
                .args([
                    "--events",
                    &server.url(&format!("{events}?group=scorer&consumer=scorer-1")),
                    "--scores",
                    &server.url(&scores),
                    "--model-ms",
                    &MODEL_MS.to_string(),
                    "--until-idle",
                    "1000",
                    "--checkpoint-interval",
                    &format!("{INTERVAL_MS}ms"),
                ])
                .arg("--dead-letters")
                .arg(&dead_letters)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr).unwrap()),
        );
        done.store(true, Relaxed);
        (peak_rss, sampler.join().unwrap())
    });
    let log = std::fs::read_to_string(&stderr).unwrap();
    let queues = log
        .lines()
        .find_map(|line| line.split_once("most batches held / capacity (by stage): "))
        .unwrap_or_else(|| panic!("no queues line in the summary:\n{log}"))
        .1;
    eprintln!(
        "{n} events: peak RSS {peak_rss} KiB, at most {most_pending} pending ({samples} samples); queues {queues}"
    );

    assert!(
        most_pending <= PENDING_BOUND,
        "{most_pending} entries were pending at once, above the bound of {PENDING_BOUND}"
    );
    // The reader was held back: the model's intake filled up.
    let intake = queues
        .split(", ")
        .find(|q| q.contains(" intake "))
        .and_then(|q| q.rsplit(' ').next())
        .unwrap_or_else(|| panic!("no intake queue in `{queues}`"));
    let (peak, capacity) = intake.split_once('/').unwrap();
    assert_eq!(
        peak, capacity,
        "the model's intake never filled ({intake}): the model was not the bottleneck"
    );

    let mut ids = scored_ids(&mut conn, &scores);
    assert_eq!(ids.len() as u64, n, "every event is scored once");
    ids.sort_unstable();
    assert_eq!(
        ids,
        (0..n).collect::<Vec<_>>(),
        "every event is scored once"
    );
    assert_eq!(pending(&mut conn, &events), 0, "nothing is left pending");
    assert!(!dead_letters.exists(), "no dead letters:\n{log}");
    Measured {
        peak_rss,
        most_pending,
    }
}

#[test]
fn a_slow_model_holds_the_reader_back_pending_entries_and_memory_stay_bounded() {
    // The bound must say something: far below the larger backlog.
    const { assert!(5 * PENDING_BOUND < 10 * N) };
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let small = run(&server, dir.path(), N);
    let large = run(&server, dir.path(), 10 * N);
    eprintln!(
        "pending bound {PENDING_BOUND}; at most {} and {} pending; peak RSS {} KiB and {} KiB",
        small.most_pending, large.most_pending, small.peak_rss, large.peak_rss
    );
    assert!(
        large.most_pending > 0,
        "the sampler never saw an entry pending: it measured nothing"
    );
    assert!(
        (large.peak_rss as f64) <= 1.5 * small.peak_rss as f64,
        "peak RSS grew from {} KiB to {} KiB for 10x the entries",
        small.peak_rss,
        large.peak_rss
    );
}
