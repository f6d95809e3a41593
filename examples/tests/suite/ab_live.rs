//! `ab_test --live` on a real redis-server it starts: simulated requests are read from a stream
//! through a consumer group, CTR per arm per window goes out to a stream, the report (with the
//! always-valid test and the sample-ratio check) is refreshed in its file as windows close, and
//! every request is acknowledged.

#[path = "../../../tests/common/redis_server.rs"]
#[allow(dead_code)]
mod redis_server;

use std::time::Duration;

use tandem::checkpoint::CheckpointPolicy;
use tandem::prelude::*;
use tandem_examples::ab::{sim, train, AbArgs, AbReport, AbTest, TrainConfig};

use redis_server::RedisServer;

const TRAFFIC: u64 = 6000;

#[test]
fn a_live_run_writes_each_window_and_the_report_and_acknowledges_every_request() {
    let server = RedisServer::start();
    let mut conn = server.client();
    // What `ab_traffic --traffic 6000 --seed 3` writes.
    for chunk in sim::requests(TRAFFIC, 3).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for request in chunk {
            pipe.cmd("XADD")
                .arg("requests")
                .arg("*")
                .arg("data")
                .arg(serde_json::to_string(request).unwrap())
                .ignore();
        }
        pipe.query::<()>(&mut conn).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    train(&TrainConfig::default(), dir.path()).unwrap();
    let report_path = dir.path().join("report.txt");
    let args = AbArgs {
        live: Some(server.url("requests?group=ab&consumer=ab-1")),
        live_windows: server.url("ab-windows"),
        live_report: report_path.clone(),
        live_parts: dir.path().join("parts"),
        until_idle: Some(1500),
        traffic: TRAFFIC,
        seed: 3,
        ..AbArgs::new(
            dir.path(),
            &dir.path().join("windows.jsonl"),
            &dir.path().join("chart.svg"),
        )
    };
    let config = RunConfig {
        device: DeviceChoice::Cpu,
        checkpoints: CheckpointPolicy {
            interval: Some(Duration::from_millis(100)),
            every: None,
        },
        ..RunConfig::default()
    };
    let summary = tandem::job::run_pipeline::<AbTest>(&args, &config).unwrap();
    assert_eq!(summary.totals().read, TRAFFIC);

    // 60 simulated minutes in 5-minute windows, both arms in each.
    let windows = args.windows.take();
    assert_eq!(windows.len(), 24);
    let streamed: u64 = redis::cmd("XLEN")
        .arg("ab-windows")
        .query(&mut conn)
        .unwrap();
    assert_eq!(streamed, 24);
    // The last refresh of the report is the report of every window.
    let report = AbReport::new(&args, &windows);
    let written = std::fs::read_to_string(&report_path).unwrap();
    assert_eq!(written, report.to_string());
    assert!(
        written.contains("looked at after each of 12 windows (mSPRT"),
        "{written}"
    );
    assert!(written.contains("sample ratio"), "{written}");
    assert_eq!(
        report.totals[0].impressions + report.totals[1].impressions,
        TRAFFIC
    );
    // No windows file in live mode: it would only be written at the end. The rolling parts
    // hold every window result, each once.
    assert!(!dir.path().join("windows.jsonl").exists());
    let mut parts: Vec<_> = std::fs::read_dir(dir.path().join("parts"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    parts.sort();
    assert!(!parts.is_empty());
    let mut in_parts: Vec<String> = parts
        .iter()
        .flat_map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            text.lines().map(str::to_owned).collect::<Vec<_>>()
        })
        .collect();
    let mut expected: Vec<String> = windows
        .iter()
        .map(|w| serde_json::to_string(w).unwrap())
        .collect();
    in_parts.sort();
    expected.sort();
    assert_eq!(in_parts, expected);
    let pending: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg("requests")
        .arg("ab")
        .query(&mut conn)
        .unwrap();
    assert_eq!(pending.first(), Some(&redis::Value::Int(0)));
}
