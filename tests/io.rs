//! Sources and sinks: file outputs appear whole or not at all, paths can be replaced from the
//! configuration (the CLI's `--input`/`--output`), CSV round-trips, and a failing sink write
//! dead-letters the element instead of stopping the run.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tandem::io::{Commit, Sink};
use tandem::prelude::*;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Rec {
    id: u32,
    name: String,
}

struct Args {
    input: PathBuf,
    output: PathBuf,
}

pipeline! {
    CsvToJson(args: Args) {
        read(Csv::<Rec>::open(&args.input))
            -> map(|r: Rec| if r.id == 99 { panic!("bad record 99") } else { r })
            -> write(JsonLines::create(&args.output));
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn csv_in_json_lines_out() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id,name\n1,ada\n2,\"bob, jr\"\n").unwrap();
    let args = Args {
        input,
        output: dir.path().join("out.jsonl"),
    };
    CsvToJson::run_blocking(&args, &RunConfig::default()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&args.output).unwrap(),
        "{\"id\":1,\"name\":\"ada\"}\n{\"id\":2,\"name\":\"bob, jr\"}\n"
    );
}

#[test]
fn a_failed_run_leaves_neither_output_nor_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id,name\n1,ada\n99,zed\n3,cy\n").unwrap();
    let args = Args {
        input,
        output: dir.path().join("out.jsonl"),
    };
    let config = RunConfig {
        fail_fast: true,
        ..RunConfig::default()
    };
    assert!(CsvToJson::run_blocking(&args, &config).is_err());
    assert_eq!(files_in(dir.path()), ["in.csv"]);
}

#[test]
fn an_existing_output_is_replaced_only_when_the_run_ends_well() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    let output = dir.path().join("out.jsonl");
    std::fs::write(&output, "previous results\n").unwrap();
    std::fs::write(&input, "id,name\n99,zed\n").unwrap();
    let args = Args {
        input: input.clone(),
        output: output.clone(),
    };
    let config = RunConfig {
        fail_fast: true,
        ..RunConfig::default()
    };
    assert!(CsvToJson::run_blocking(&args, &config).is_err());
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "previous results\n"
    );
    std::fs::write(&input, "id,name\n5,eve\n").unwrap();
    CsvToJson::run_blocking(&args, &RunConfig::default()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "{\"id\":5,\"name\":\"eve\"}\n"
    );
}

#[test]
fn paths_can_be_replaced_by_name_from_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = dir.path().join("other.csv");
    std::fs::write(&elsewhere, "id,name\n7,gus\n").unwrap();
    let args = Args {
        input: dir.path().join("missing.csv"),
        output: dir.path().join("unused.jsonl"),
    };
    let redirected = dir.path().join("redirected.jsonl");
    let config = RunConfig {
        inputs: vec![(None, elsewhere)],
        outputs: vec![(Some("sink1".into()), redirected.clone())],
        ..RunConfig::default()
    };
    CsvToJson::run_blocking(&args, &config).unwrap();
    assert_eq!(
        std::fs::read_to_string(&redirected).unwrap(),
        "{\"id\":7,\"name\":\"gus\"}\n"
    );
    assert!(!args.output.exists());
}

#[test]
fn replacing_the_path_of_a_source_that_has_none_is_a_clear_error() {
    pipeline! {
        FromMemory(args: Collector<u32>) {
            read(Memory::new(vec![1u32])) -> write(args.clone());
        }
    }
    let config = RunConfig {
        inputs: vec![(None, "x.jsonl".into())],
        ..RunConfig::default()
    };
    let error = FromMemory::run_blocking(&Collector::new(), &config)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("is not a file") && error.contains("x.jsonl"),
        "{error}"
    );
}

#[test]
fn an_override_naming_no_source_or_sink_is_an_error_not_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let args = Args {
        input: dir.path().join("in.csv"),
        output: dir.path().join("out.jsonl"),
    };
    let typo = RunConfig {
        outputs: vec![(Some("sink2".into()), "x.jsonl".into())],
        ..RunConfig::default()
    };
    let error = CsvToJson::run_blocking(&args, &typo)
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "`--output sink2=x.jsonl`: this pipeline has no sink named `sink2` (sinks: sink1)"
    );
    let stream = RunConfig {
        inputs: vec![(Some("nums".into()), "x.csv".into())],
        ..RunConfig::default()
    };
    let error = CsvToJson::run_blocking(&args, &stream)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no source named `nums` (sources: source0)"),
        "{error}"
    );
}

#[test]
fn csv_output_has_a_header_and_quotes_what_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    struct CArgs {
        out: PathBuf,
    }
    pipeline! {
        ToCsv(args: CArgs) {
            read(Memory::new(vec![Rec { id: 1, name: "a,b".into() }, Rec { id: 2, name: "c".into() }]))
                -> write(Csv::create(&args.out));
        }
    }
    let args = CArgs {
        out: dir.path().join("out.csv"),
    };
    ToCsv::run_blocking(&args, &RunConfig::default()).unwrap();
    assert_eq!(
        std::fs::read_to_string(&args.out).unwrap(),
        "id,name\n1,\"a,b\"\n2,c\n"
    );
}

/// A sink whose every third write fails, like a flaky remote store.
struct Flaky {
    inner: Collector<u32>,
}

impl Sink<u32> for Flaky {
    fn describe(&self) -> String {
        "flaky store".into()
    }
    fn write(&mut self, item: u32) -> Result<(), String> {
        if item % 3 == 2 {
            return Err("connection reset".into());
        }
        self.inner.write(item)
    }
    fn finish(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        Sink::<u32>::finish(&mut self.inner)
    }
}

#[test]
fn a_failing_sink_write_dead_letters_the_element_and_the_run_goes_on() {
    pipeline! {
        ToFlaky(args: Collector<u32>) {
            read(Memory::new(0..9u32)) -> write(Flaky { inner: args.clone() });
        }
    }
    let out = Collector::new();
    let summary = ToFlaky::run_blocking(&out, &RunConfig::default()).unwrap();
    assert_eq!(out.take(), vec![0, 1, 3, 4, 6, 7]);
    let errors: Vec<String> = summary
        .dead_letters
        .iter()
        .map(|d| format!("{}: {}", d.position, d.error))
        .collect();
    assert_eq!(
        errors,
        [
            "3: writing to flaky store failed: connection reset",
            "6: writing to flaky store failed: connection reset",
            "9: writing to flaky store failed: connection reset"
        ]
    );
    let totals = summary.totals();
    assert_eq!((totals.written, totals.dead), (6, 3));
}

#[cfg(unix)]
#[test]
fn outputs_are_readable_files_not_private_temporaries() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "id,name\n5,eve\n").unwrap();
    let args = Args {
        input,
        output: dir.path().join("out.jsonl"),
    };
    CsvToJson::run_blocking(&args, &RunConfig::default()).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&args.output), 0o644);
    // A replaced output keeps its mode.
    std::fs::set_permissions(&args.output, std::fs::Permissions::from_mode(0o640)).unwrap();
    CsvToJson::run_blocking(&args, &RunConfig::default()).unwrap();
    assert_eq!(mode(&args.output), 0o640);
}
