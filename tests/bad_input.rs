//! Bad records never stop a run and are never lost: each one reaches the dead letters with its
//! position and reason, every good record reaches the output, and the summary adds up.

use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use tandem::prelude::*;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct Req {
    user_id: u64,
    score: f64,
}

struct FileArgs {
    input: PathBuf,
    output: PathBuf,
}

pipeline! {
    Copy(args: FileArgs) {
        read(JsonLines::<Req>::open(&args.input)) -> write(JsonLines::create(&args.output));
    }
}

fn write_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    path
}

fn read_output(path: &PathBuf) -> Vec<Req> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn malformed_lines_go_to_dead_letters_with_their_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"user_id\": 1, \"score\": 0.5}\n"); // 1 good
    input.extend_from_slice(b"{\"user_id\": 2, \"score\": \n"); // 2 malformed JSON
    input.extend_from_slice(b"{\"user_id\": \"three\", \"score\": 0.1}\n"); // 3 wrong type
    input.extend_from_slice(b"\n"); // 4 blank: not a record
    input.extend_from_slice(b"{\"user_id\": 5, \"score\": 1.5}\r\n"); // 5 good, CRLF
    input.extend_from_slice(b"{\"user_id\": 6}\n"); // 6 missing field
    input.extend_from_slice(b"{\"user_id\": 7, \"score\": 2.5, \"extra\": [1]}\n"); // 7 good, extra field ignored
    input.extend_from_slice(b"{\"user_id\": 8, \"score\": \"\xff\xfe\"}\n"); // 8 invalid UTF-8
    input.extend_from_slice(b"{\"user_id\": 9, \"sco"); // 9 truncated last line
    let args = FileArgs {
        input: write_file(&dir, "in.jsonl", &input),
        output: dir.path().join("out.jsonl"),
    };

    let summary = Copy::run_blocking(&args, &RunConfig::default()).unwrap();

    assert_eq!(
        read_output(&args.output),
        vec![
            Req {
                user_id: 1,
                score: 0.5
            },
            Req {
                user_id: 5,
                score: 1.5
            },
            Req {
                user_id: 7,
                score: 2.5
            },
        ]
    );
    let dead: Vec<(u64, &str)> = summary
        .dead_letters
        .iter()
        .map(|d| (d.position, d.error.as_str()))
        .collect();
    let lines: Vec<u64> = dead.iter().map(|d| d.0).collect();
    assert_eq!(lines, [2, 3, 6, 8, 9], "{dead:#?}");
    assert!(
        dead[1].1.contains("invalid type: string \"three\""),
        "{}",
        dead[1].1
    );
    assert!(dead[2].1.contains("missing field `score`"), "{}", dead[2].1);
    assert!(
        dead[4].1.starts_with("truncated last line"),
        "{}",
        dead[4].1
    );
    let truncated = &summary.dead_letters[4];
    assert_eq!(truncated.input.as_deref(), Some("{\"user_id\": 9, \"sco"));
    assert!(
        truncated.source.contains("in.jsonl"),
        "{}",
        truncated.source
    );

    let totals = summary.totals();
    assert_eq!((totals.read, totals.written, totals.dead), (8, 3, 5));
    assert!(summary.to_string().contains("all accounted for"));
}

#[test]
fn an_empty_file_is_an_empty_run() {
    let dir = tempfile::tempdir().unwrap();
    let args = FileArgs {
        input: write_file(&dir, "empty.jsonl", b""),
        output: dir.path().join("out.jsonl"),
    };
    let summary = Copy::run_blocking(&args, &RunConfig::default()).unwrap();
    assert_eq!(summary.totals().read, 0);
    assert_eq!(std::fs::read(&args.output).unwrap(), b"");
}

#[test]
fn an_over_long_line_is_dead_lettered_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let long = format!(
        "{{\"user_id\": 1, \"score\": 0.5, \"pad\": \"{}\"}}\n",
        "x".repeat(200)
    );
    let input = format!("{long}{{\"user_id\": 2, \"score\": 0.25}}\n");
    let path = write_file(&dir, "in.jsonl", input.as_bytes());
    let out = Collector::new();

    struct Args {
        path: PathBuf,
        out: Collector<Req>,
    }
    pipeline! {
        Limited(args: Args) {
            read(JsonLines::<Req>::open(&args.path).max_line_bytes(100)) -> write(args.out.clone());
        }
    }
    let summary = Limited::run_blocking(
        &Args {
            path,
            out: out.clone(),
        },
        &RunConfig::default(),
    )
    .unwrap();
    assert_eq!(
        out.take(),
        vec![Req {
            user_id: 2,
            score: 0.25
        }]
    );
    assert_eq!(summary.dead_letters.len(), 1);
    assert_eq!(summary.dead_letters[0].position, 1);
    assert!(summary.dead_letters[0]
        .error
        .contains("longer than the limit of 100 bytes"));
}

#[test]
fn a_missing_input_fails_before_any_output_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let args = FileArgs {
        input: dir.path().join("nope.jsonl"),
        output: dir.path().join("out.jsonl"),
    };
    let error = Copy::run_blocking(&args, &RunConfig::default()).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("cannot open input file") && text.contains("nope.jsonl"),
        "{text}"
    );
    assert!(!args.output.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no temporary file is left"
    );
}

#[test]
fn dead_letters_can_go_to_a_jsonl_file() {
    let dir = tempfile::tempdir().unwrap();
    let args = FileArgs {
        input: write_file(
            &dir,
            "in.jsonl",
            b"{\"user_id\": 1, \"score\": 0.5}\nnot json\n",
        ),
        output: dir.path().join("out.jsonl"),
    };
    let dead_path = dir.path().join("dead.jsonl");
    let config = RunConfig {
        dead_letters: DeadLetterTarget::File(dead_path.clone()),
        ..RunConfig::default()
    };
    let summary = Copy::run_blocking(&args, &config).unwrap();
    assert_eq!(
        summary.dead_letter_file.as_deref(),
        Some(dead_path.as_path())
    );
    let letters: Vec<DeadLetter> = std::fs::read_to_string(&dead_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].position, 2);
    assert_eq!(letters[0].input.as_deref(), Some("not json"));
}

#[test]
fn no_dead_letter_file_is_created_when_there_are_none() {
    let dir = tempfile::tempdir().unwrap();
    let args = FileArgs {
        input: write_file(&dir, "in.jsonl", b"{\"user_id\": 1, \"score\": 0.5}\n"),
        output: dir.path().join("out.jsonl"),
    };
    let dead_path = dir.path().join("dead.jsonl");
    let config = RunConfig {
        dead_letters: DeadLetterTarget::File(dead_path.clone()),
        ..RunConfig::default()
    };
    let summary = Copy::run_blocking(&args, &config).unwrap();
    assert!(!dead_path.exists());
    assert_eq!(summary.dead_letter_file, None);
}

#[test]
fn fail_fast_stops_at_the_first_bad_record_and_commits_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let args = FileArgs {
        input: write_file(
            &dir,
            "in.jsonl",
            b"{\"user_id\": 1, \"score\": 0.5}\n{oops}\n{\"user_id\": 3, \"score\": 0.5}\n",
        ),
        output: dir.path().join("out.jsonl"),
    };
    let config = RunConfig {
        fail_fast: true,
        ..RunConfig::default()
    };
    let error = Copy::run_blocking(&args, &config).unwrap_err();
    match &error {
        Error::FailFast(letter) => assert_eq!(letter.position, 2),
        other => panic!("expected a fail-fast error, got {other}"),
    }
    assert!(error.to_string().contains("record 2"), "{error}");
    assert!(!args.output.exists(), "a failed run leaves no output");
}

#[derive(Debug, Deserialize)]
struct Row {
    name: String,
    age: u32,
}

#[test]
fn csv_rows_with_missing_columns_or_bad_values_are_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(
        &dir,
        "people.csv",
        b"name,age\nada,36\nbob\ncy,old\ndee,41\n",
    );
    struct Args {
        path: PathBuf,
        out: Collector<(String, u32)>,
    }
    pipeline! {
        People(args: Args) {
            read(Csv::<Row>::open(&args.path)) -> map(|r: Row| (r.name, r.age)) -> write(args.out.clone());
        }
    }
    let args = Args {
        path,
        out: Collector::new(),
    };
    let summary = People::run_blocking(&args, &RunConfig::default()).unwrap();
    assert_eq!(
        args.out.take(),
        vec![("ada".into(), 36), ("dee".into(), 41)]
    );
    let dead: Vec<(u64, &str, Option<&str>)> = summary
        .dead_letters
        .iter()
        .map(|d| (d.position, d.error.as_str(), d.input.as_deref()))
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!((dead[0].0, dead[0].2), (3, Some("bob")));
    assert!(
        dead[0].1.contains("1 columns, the header has 2"),
        "{}",
        dead[0].1
    );
    assert_eq!((dead[1].0, dead[1].2), (4, Some("cy,old")));
    assert!(dead[1].1.contains("column 2"), "{}", dead[1].1);
}
