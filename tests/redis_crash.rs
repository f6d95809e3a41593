//! Crash and restart on live traffic: the `ab_split_live` example reads 20,000 requests from a
//! real redis-server, is SIGKILLed twice at moments drawn at random, and is started again each
//! time; what it served (every request exactly once) and its counts per arm per window equal
//! those of an uninterrupted run, and its consumer group has nothing pending at the end.

mod common;
#[path = "common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use std::process::{Child, Command};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Connection;
use serde_json::Value;

use common::{example_binary, wait_for};
use redis_server::RedisServer;

const N: u64 = 20_000;

fn add_requests(conn: &mut Connection) {
    for chunk in (1..=N).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for &i in chunk {
            let request = serde_json::json!({
                "request_id": i,
                "user_id": (i * 7919) % 1000,
                "ad_id": i % 13,
                "score": (i % 100) as f64 / 100.0,
                // 5 ms apart: ten 10-second windows.
                "time": 1_700_000_000_000u64 + i * 5,
            });
            pipe.cmd("XADD")
                .arg("requests")
                .arg("*")
                .arg("data")
                .arg(request.to_string())
                .ignore();
        }
        pipe.query::<()>(conn).unwrap();
    }
}

fn start(server: &RedisServer, name: &str) -> Child {
    Command::new(example_binary("ab_split_live"))
        .args([
            "--requests",
            &server.url(&format!("requests?group={name}&consumer={name}-1")),
            "--served",
            &server.url(&format!("{name}-served")),
            "--counts",
            &server.url(&format!("{name}-counts")),
            "--until-idle",
            "1500",
            "--checkpoint-interval",
            "50ms",
            "--quiet",
            "--dead-letters",
            &std::env::temp_dir()
                .join(format!("redis-crash-{}-{name}.jsonl", std::process::id()))
                .to_string_lossy(),
        ])
        .spawn()
        .unwrap()
}

fn finish(mut child: Child) {
    let status = child.wait().unwrap();
    assert!(status.success(), "the pipeline exited with {status}");
}

fn xlen(conn: &mut Connection, stream: &str) -> u64 {
    redis::cmd("XLEN").arg(stream).query(conn).unwrap()
}

/// Every entry's `data`, parsed, sorted by its text.
fn entries(conn: &mut Connection, stream: &str) -> Vec<Value> {
    let all: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(conn)
        .unwrap();
    let mut texts: Vec<String> = all.into_iter().map(|(_, f)| f[0].1.clone()).collect();
    texts.sort();
    texts
        .iter()
        .map(|t| serde_json::from_str(t).unwrap())
        .collect()
}

fn pending(conn: &mut Connection, group: &str) -> u64 {
    let summary: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg("requests")
        .arg(group)
        .query(conn)
        .unwrap();
    match summary.first() {
        Some(redis::Value::Int(n)) => *n as u64,
        other => panic!("unexpected XPENDING reply {other:?}"),
    }
}

#[test]
fn a_pipeline_killed_twice_and_restarted_serves_every_request_exactly_once() {
    let server = RedisServer::start();
    let mut conn = server.client();
    add_requests(&mut conn);

    // The reference: one uninterrupted run, through a group of its own.
    finish(start(&server, "reference"));
    let reference_served = entries(&mut conn, "reference-served");
    let reference_counts = entries(&mut conn, "reference-counts");
    assert_eq!(reference_served.len() as u64, N);
    // Ten full windows per arm, and the last request alone in an eleventh.
    assert_eq!(reference_counts.len(), 21);

    // Killed (SIGKILL) at two moments drawn at random, started again each time.
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    for round in 0..2u64 {
        let at = xlen(&mut conn, "live-served") + N / 20 + (seed >> (round * 16)) % (N / 4);
        let mut child = start(&server, "live");
        let reached = wait_for(Duration::from_secs(120), || {
            xlen(&mut conn, "live-served") >= at
        });
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            reached,
            "round {round}: the pipeline never served {at} requests"
        );
        eprintln!(
            "round {round}: killed after {} served",
            xlen(&mut conn, "live-served")
        );
    }
    finish(start(&server, "live"));

    let served = entries(&mut conn, "live-served");
    let ids: Vec<u64> = served
        .iter()
        .map(|s| s["request_id"].as_u64().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "a request was served twice");
    assert_eq!(
        sorted,
        (1..=N).collect::<Vec<_>>(),
        "a request was not served"
    );
    assert_eq!(served, reference_served);
    assert_eq!(entries(&mut conn, "live-counts"), reference_counts);
    assert_eq!(pending(&mut conn, "live"), 0);
}
