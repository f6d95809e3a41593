//! SIGINT and SIGTERM on a real pipeline binary (the `ab_split` example reading requests from a
//! pipe): the first stops reading, drains what is in flight, commits whole outputs, prints the
//! summary and exits 130/143; a second exits at once, leaving no partial output behind.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn start(dir: &Path) -> Child {
    Command::new(common::example_binary("ab_split"))
        .args([
            "--requests",
            "/dev/stdin",
            "--served",
            "served.jsonl",
            "--dead-letters",
            "bad.jsonl",
        ])
        .current_dir(dir)
        .env_remove("TANDEM_DEAD_LETTERS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn request(n: u64) -> String {
    format!(
        "{{\"user_id\":{},\"ad_id\":{},\"score\":{},\"time\":{n}}}\n",
        n % 977,
        n % 13,
        (n % 100) as f64 / 100.0
    )
}

/// Feeds requests into the child's stdin until `pause` is set (then keeps the pipe open, idle)
/// or the child goes away; returns how many lines it wrote.
fn feed(mut child: Child, pause: Arc<AtomicBool>) -> (Child, std::thread::JoinHandle<u64>) {
    let mut stdin = child.stdin.take().unwrap();
    let handle = std::thread::spawn(move || {
        let mut n = 0;
        loop {
            if pause.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            }
            let chunk: String = (n..n + 100).map(request).collect();
            if stdin.write_all(chunk.as_bytes()).is_err() {
                return n;
            }
            n += 100;
        }
    });
    (child, handle)
}

fn signal(child: &Child, name: &str) {
    let signal = match name {
        "INT" => libc::SIGINT,
        "TERM" => libc::SIGTERM,
        other => panic!("no signal {other}"),
    };
    // SAFETY: sends a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

/// Waits for the child to exit (at most `limit`), then returns its exit code and stderr.
fn wait(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status.code(), stderr);
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("the pipeline did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The number after `label` in the summary's totals line (`written 1883`).
fn total(stderr: &str, label: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains("= written"))
        .unwrap_or_else(|| panic!("no totals line in:\n{stderr}"));
    let at = line.find(label).unwrap() + label.len();
    line[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect()
}

fn stops_gracefully(name: &str, code: i32) {
    let dir = tempfile::tempdir().unwrap();
    let (child, feeder) = feed(start(dir.path()), Arc::new(AtomicBool::new(false)));
    // Let it read a good part of the input, then ask it to stop while the input still flows.
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, name);
    let (status, stderr) = wait(child, Duration::from_secs(30));
    let fed = feeder.join().unwrap();
    assert_eq!(status, Some(code), "{stderr}");
    assert!(
        stderr.contains(&format!("stopped by SIG{name}")),
        "{stderr}"
    );
    assert!(stderr.contains("(all accounted for)"), "{stderr}");
    let (read, written) = (total(&stderr, "read "), total(&stderr, "written "));
    assert!(
        read > 0 && read < fed,
        "read {read} of {fed} fed: it should stop before the end"
    );
    // The output is whole: every line a full record, as many as the summary says were written.
    let served = std::fs::read_to_string(dir.path().join("served.jsonl")).unwrap();
    assert!(served.ends_with('\n'));
    for line in served.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    assert_eq!(served.lines().count() as u64, written);
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn sigint_drains_commits_and_exits_130() {
    stops_gracefully("INT", 130);
}

#[test]
fn sigterm_drains_commits_and_exits_143() {
    stops_gracefully("TERM", 143);
}

#[test]
fn a_second_signal_exits_at_once_without_partial_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let pause = Arc::new(AtomicBool::new(false));
    let (child, _feeder) = feed(start(dir.path()), pause.clone());
    std::thread::sleep(Duration::from_millis(1000));
    // The source now waits for input that does not come, so the first signal cannot finish
    // the run: only the second ends it.
    pause.store(true, Ordering::Relaxed);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(500));
    let mut child = child;
    assert!(
        child.try_wait().unwrap().is_none(),
        "still draining after the first signal"
    );
    let started = Instant::now();
    signal(&child, "INT");
    let (status, stderr) = wait(child, Duration::from_secs(5));
    assert!(started.elapsed() < Duration::from_secs(2), "{stderr}");
    assert_eq!(status, Some(130), "{stderr}");
    assert!(stderr.contains("SIGINT again: exiting now"), "{stderr}");
    assert!(!dir.path().join("served.jsonl").exists());
    assert!(
        leftovers(dir.path()).is_empty(),
        "{:?}",
        leftovers(dir.path())
    );
}
