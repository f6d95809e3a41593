//! Helpers shared by integration tests.

use std::path::PathBuf;
use std::process::Command;

/// The path of a built example binary (`cargo test` builds examples next to the test binaries;
/// `cargo test --test NAME` does not, so it is built here once per test process, never stale).
pub fn example_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--workspace", "--example", name])
            .status()
            .unwrap();
        assert!(status.success());
        built.push(name.to_owned());
    }
    path
}

/// Runs `command` to the end, checks that it exited with 0, and returns its peak RSS in KiB
/// (from `wait4`'s rusage: `Child::wait` does not give it).
#[cfg(target_os = "linux")]
#[allow(dead_code)] // not every test file that shares this module measures memory
pub fn peak_rss_of(command: &mut Command) -> u64 {
    // Reaped by `wait4` below.
    #[allow(clippy::zombie_processes)]
    let child = command.spawn().unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child; `status` and `usage` are valid for writes.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status}"
    );
    usage.ru_maxrss as u64
}
