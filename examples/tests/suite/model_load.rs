//! A fast source into a real model keeps memory bounded: `shadow --rate 0` sends every request
//! at once into EfficientNet-Lite0 on the CPU (`--no-shadow`: the served path alone), so the
//! reader runs far ahead of the model unless the bounded queues hold it back. Its peak RSS for
//! ten times more requests stays within 1.5 times, and every request is answered.

use crate::bins;

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `shadow` on `n` requests; returns its peak RSS in KiB.
fn peak_rss(dir: &Path, n: usize) -> u64 {
    let responses = dir.join(format!("responses-{n}.jsonl"));
    let peak = bins::peak_rss_of(
        Command::new(bins::example_binary("shadow"))
            .args(["--device", "cpu", "--quiet", "--no-shadow", "--rate", "0"])
            .args(["--requests", &n.to_string()])
            .arg("--responses")
            .arg(&responses)
            .arg("--report")
            .arg(dir.join(format!("report-{n}.json")))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    );
    let answered = std::fs::read_to_string(&responses).unwrap();
    assert_eq!(answered.lines().count(), n, "every request is answered");
    peak
}

#[test]
fn a_backlog_into_a_real_model_keeps_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let small = peak_rss(dir.path(), 30);
    let large = peak_rss(dir.path(), 300);
    eprintln!("peak RSS: {small} KiB for 30 requests, {large} KiB for 300");
    assert!(
        (large as f64) <= 1.5 * small as f64,
        "peak RSS grew from {small} KiB to {large} KiB for 10x the requests"
    );
}
