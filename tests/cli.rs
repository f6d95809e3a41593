//! The generated binary: `--graph`, the standard options, the summary, exit codes. Runs the
//! `ab_split` and `jsonl_grep` examples as real child processes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn example() -> PathBuf {
    common::example_binary("ab_split")
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(example())
        .args(args)
        .current_dir(dir)
        .env_remove("TANDEM_DEAD_LETTERS")
        .output()
        .unwrap()
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/requests.jsonl")
}

#[test]
fn graph_mermaid_prints_the_graph_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--graph", "mermaid"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("flowchart LR\n"), "{text}");
    assert!(
        text.contains("s2 -->|champ| s3") && text.contains("s2 -->|chall| s4"),
        "{text}"
    );
    assert!(
        text.contains("s3 -->|a| s5") && text.contains("s4 -->|b| s5"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "--graph runs nothing"
    );
}

#[test]
fn graph_dot_prints_a_digraph() {
    let out = run(Path::new("."), &["--graph", "dot"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("digraph AbSplit {"), "{text}");
    assert!(text.contains("s2 -> s3 [label=\"champ\"]"), "{text}");
}

#[test]
fn a_run_writes_outputs_dead_letters_and_a_summary_that_adds_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = data();
    let out = run(
        dir.path(),
        &[
            "--input",
            data.to_str().unwrap(),
            "--output",
            "served.jsonl",
            "--dead-letters",
            "bad.jsonl",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("read 2000 + created 0 = written 1883 + filtered 114 + dead-lettered 3"),
        "{stderr}"
    );
    assert!(stderr.contains("(all accounted for)"), "{stderr}");
    let served = std::fs::read_to_string(dir.path().join("served.jsonl")).unwrap();
    assert_eq!(served.lines().count(), 1883);
    let bad = std::fs::read_to_string(dir.path().join("bad.jsonl")).unwrap();
    let lines: Vec<u64> = bad
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["position"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(lines, [100, 1000, 1500]);
}

#[test]
fn quiet_prints_nothing_and_fail_fast_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let data = data();
    let input = data.to_str().unwrap();
    let quiet = run(dir.path(), &["--requests", input, "--quiet"]);
    assert!(quiet.status.success());
    assert!(
        quiet.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&quiet.stderr)
    );

    let failed = run(
        dir.path(),
        &["--requests", input, "--served", "ff.jsonl", "--fail-fast"],
    );
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("--fail-fast") && stderr.contains("record 100"),
        "{stderr}"
    );
    assert!(!dir.path().join("ff.jsonl").exists());
}

#[test]
fn a_missing_input_is_one_clear_line_and_exit_code_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--requests", "nowhere.jsonl"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: cannot open input file `nowhere.jsonl`: No such file"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_come_from_clap_with_exit_code_2() {
    let out = run(Path::new("."), &["--graph", "png"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values: mermaid, dot"));
}

#[test]
fn stdin_to_stdout_with_bad_lines_counted() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::example_binary("jsonl_grep"))
        .args([
            "--field",
            "arm",
            "--equals",
            "champion",
            "--dead-letters",
            "bad.jsonl",
        ])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"arm\":\"champion\",\"n\":1}\n{\"arm\":\"challenger\",\"n\":2}\nnot json\n{\"arm\":\"champion\",\"n\":4}\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"arm\":\"champion\",\"n\":1}\n{\"arm\":\"champion\",\"n\":4}\n"
    );
    assert!(
        stderr.contains("read 4 + created 0 = written 2 + filtered 1 + dead-lettered 1"),
        "{stderr}"
    );
    let bad = std::fs::read_to_string(dir.path().join("bad.jsonl")).unwrap();
    assert!(
        bad.contains("\"position\":3") && bad.contains("JSON lines on stdin"),
        "{bad}"
    );
}

#[test]
fn metrics_addr_on_a_taken_port_fails_at_start_up_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = data();
    let out = run(
        dir.path(),
        &[
            "--metrics-addr",
            &addr,
            "--input",
            data.to_str().unwrap(),
            "-q",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains(&format!("cannot serve metrics on {addr} (--metrics-addr)")),
        "{err}"
    );
    assert!(!dir.path().join("served.jsonl").exists(), "nothing ran");
}

#[test]
fn metrics_addr_must_be_an_address() {
    let out = run(Path::new("."), &["--metrics-addr", "localhost"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--metrics-addr"), "{err}");
}
