//! A fast source into a slow model keeps memory bounded: the `backpressure` example's peak RSS
//! for ten times more input stays within 1.5 times its peak for the smaller input, and every
//! event is scored.
#![cfg(target_os = "linux")]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn events(path: &Path, n: u64) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for id in 0..n {
        let features: Vec<String> = (0..16)
            .map(|i| format!("{:.4}", ((id * 31 + i * 7) % 1000) as f64 / 1000.0))
            .collect();
        writeln!(out, "{{\"id\":{id},\"features\":[{}]}}", features.join(",")).unwrap();
    }
}

/// Runs the example on `n` events; returns its peak RSS in KiB (from `wait4`'s rusage).
fn peak_rss(dir: &Path, n: u64) -> u64 {
    let input = dir.join(format!("events-{n}.jsonl"));
    events(&input, n);
    let peak = common::peak_rss_of(
        Command::new(common::example_binary("backpressure"))
            .args(["--events", input.to_str().unwrap(), "--scores"])
            .arg(dir.join(format!("scores-{n}.jsonl")))
            .args(["--model-ms", "1", "--quiet"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    );
    let scored = std::fs::read_to_string(dir.join(format!("scores-{n}.jsonl"))).unwrap();
    assert_eq!(scored.lines().count() as u64, n, "every event is scored");
    peak
}

#[test]
fn peak_memory_does_not_grow_with_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let small = peak_rss(dir.path(), 20_000);
    let large = peak_rss(dir.path(), 200_000);
    eprintln!("peak RSS: {small} KiB for 20k events, {large} KiB for 200k");
    assert!(
        (large as f64) <= 1.5 * small as f64,
        "peak RSS grew from {small} KiB to {large} KiB for 10x the input"
    );
}
