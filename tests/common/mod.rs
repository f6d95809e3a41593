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
