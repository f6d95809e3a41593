//! Rolling file sinks: in a run that acknowledges its input at checkpoints, each checkpoint
//! renames the part written since the last one into place, whole, before the input it came
//! from is acknowledged; the last part appears when the run ends well and not when it fails; a
//! new run numbers its parts after the ones there and removes what a killed run left behind.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tandem::checkpoint::CheckpointPolicy;
use tandem::io::{Commit, Record, Source};
use tandem::prelude::*;

/// Reads `1..=n`; at each checkpoint acknowledges what it read, recording what the parts in
/// `dir` held at that moment. With `fail_at`, reading fails there.
struct Counting {
    n: u64,
    next: u64,
    fail_at: Option<u64>,
    dir: PathBuf,
    acks: Arc<Mutex<Vec<Acked>>>,
}

/// One acknowledgement: up to which number, and the numbers the parts held when it ran.
struct Acked {
    upto: u64,
    in_parts: Vec<u64>,
}

impl Source for Counting {
    type Item = u64;

    fn describe(&self) -> String {
        "counting source".into()
    }

    fn read_chunk<E: FnMut(Record<u64>)>(
        &mut self,
        max: usize,
        mut emit: E,
    ) -> tandem::Result<bool> {
        for _ in 0..max {
            if self.next > self.n {
                return Ok(false);
            }
            if self.fail_at == Some(self.next) {
                return Err(tandem::Error::Read {
                    what: self.describe(),
                    position: self.next,
                    source: std::io::Error::other("connection reset"),
                });
            }
            emit(Record::Good(self.next, self.next));
            self.next += 1;
        }
        Ok(true)
    }

    fn acknowledges(&self) -> bool {
        true
    }

    fn checkpoint(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        Ok(Some(Box::new(Ack {
            upto: self.next - 1,
            dir: self.dir.clone(),
            acks: self.acks.clone(),
        })))
    }
}

struct Ack {
    upto: u64,
    dir: PathBuf,
    acks: Arc<Mutex<Vec<Acked>>>,
}

impl Commit for Ack {
    fn commit(self: Box<Self>) -> tandem::Result<()> {
        let mut json = parts(&self.dir);
        json.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
        let in_parts = numbers_in(&json);
        self.acks.lock().unwrap().push(Acked {
            upto: self.upto,
            in_parts,
        });
        Ok(())
    }
}

/// The visible parts in `dir`, in name order.
fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut parts: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    parts
}

fn hidden(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// The numbers in JSON lines parts, in order.
fn numbers_in(parts: &[PathBuf]) -> Vec<u64> {
    parts
        .iter()
        .flat_map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            assert!(text.ends_with('\n'), "part {} ends mid-line", p.display());
            text.lines()
                .map(|l| serde_json::from_str::<Line>(l).unwrap().n)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    n: u64,
    even: bool,
}

struct Args {
    source: Mutex<Option<Counting>>,
    dir: PathBuf,
}

impl Args {
    fn new(dir: &Path, n: u64, fail_at: Option<u64>) -> (Self, Arc<Mutex<Vec<Acked>>>) {
        let acks = Arc::new(Mutex::new(Vec::new()));
        let source = Counting {
            n,
            next: 1,
            fail_at,
            dir: dir.to_owned(),
            acks: acks.clone(),
        };
        let args = Self {
            source: Mutex::new(Some(source)),
            dir: dir.to_owned(),
        };
        (args, acks)
    }

    fn source(&self) -> Counting {
        self.source
            .lock()
            .unwrap()
            .take()
            .expect("one run per Args")
    }
}

pipeline! {
    /// Numbers into rolling JSON lines parts.
    Roll(args: Args) {
        read(args.source())
            -> map(|n: u64| Line { n, even: n % 2 == 0 })
            -> write(JsonLines::rolling(&args.dir));
    }
}

pipeline! {
    /// Numbers into rolling CSV parts.
    RollCsv(args: Args) {
        read(args.source())
            -> map(|n: u64| Line { n, even: n % 2 == 0 })
            -> write(Csv::rolling(&args.dir).prefix("numbers"));
    }
}

fn every(n: u64) -> RunConfig {
    RunConfig {
        batch_size: 16,
        channel_capacity: 2,
        checkpoints: CheckpointPolicy {
            interval: None,
            every: Some(n),
        },
        ..RunConfig::default()
    }
}

#[test]
fn each_checkpoint_puts_a_whole_part_in_place_before_its_input_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (args, acks) = Args::new(&out, 2000, None);
    let summary = tandem::job::run_pipeline::<Roll>(&args, &every(100)).unwrap();
    assert_eq!(summary.totals().written, 2000);

    let acks = acks.lock().unwrap();
    assert!(acks.len() > 10, "only {} acknowledgements", acks.len());
    for ack in acks.iter() {
        // Everything acknowledged is in the parts already: nothing is lost if the run dies now.
        assert!(
            ack.in_parts.len() as u64 >= ack.upto,
            "acknowledged up to {} with {} numbers in the parts",
            ack.upto,
            ack.in_parts.len()
        );
        assert_eq!(
            ack.in_parts,
            (1..=ack.in_parts.len() as u64).collect::<Vec<_>>()
        );
    }
    let parts = parts(&out);
    assert!(parts.len() > 10, "{} parts", parts.len());
    assert_eq!(parts[0].file_name().unwrap(), "part-000001.jsonl");
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(
            part.file_name().unwrap().to_string_lossy(),
            format!("part-{:06}.jsonl", i + 1),
            "parts are numbered in sequence, none empty"
        );
    }
    assert_eq!(numbers_in(&parts), (1..=2000).collect::<Vec<_>>());
    assert_eq!(hidden(&out), Vec::<String>::new());
}

#[test]
fn a_failed_run_keeps_its_checkpointed_parts_and_a_new_run_numbers_after_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let (args, acks) = Args::new(&out, 2000, Some(1234));
    let error = tandem::job::run_pipeline::<Roll>(&args, &every(100)).unwrap_err();
    assert!(error.to_string().contains("connection reset"), "{error}");

    // What was acknowledged is in the parts; the part open when the run failed is not there.
    let acked = acks.lock().unwrap().iter().map(|a| a.upto).max().unwrap();
    let kept = numbers_in(&parts(&out));
    assert!(acked >= 1000, "acknowledged up to {acked}");
    assert!(
        kept.len() as u64 >= acked && kept.len() < 1233,
        "{}",
        kept.len()
    );
    assert_eq!(kept, (1..=kept.len() as u64).collect::<Vec<_>>());
    assert_eq!(hidden(&out), Vec::<String>::new());

    // A killed run leaves a temporary part behind; the next run removes it and goes on.
    std::fs::write(out.join(".part-000099.jsonl.x1y2.partial"), "{\"n\":").unwrap();
    let before = parts(&out).len();
    let (args, _) = Args::new(&out, 50, None);
    tandem::job::run_pipeline::<Roll>(&args, &every(1000)).unwrap();
    let after = parts(&out);
    assert_eq!(after.len(), before + 1);
    assert_eq!(
        after.last().unwrap().file_name().unwrap().to_string_lossy(),
        format!("part-{:06}.jsonl", before + 1)
    );
    assert_eq!(numbers_in(&after[before..]), (1..=50).collect::<Vec<_>>());
    assert_eq!(hidden(&out), Vec::<String>::new());
}

#[test]
fn csv_parts_each_start_with_the_header() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("csv");
    let (args, _) = Args::new(&out, 500, None);
    tandem::job::run_pipeline::<RollCsv>(&args, &every(100)).unwrap();
    let parts = parts(&out);
    assert!(parts.len() >= 5, "{} parts", parts.len());
    let mut numbers = Vec::new();
    for part in &parts {
        assert!(part
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("numbers-"));
        let text = std::fs::read_to_string(part).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("n,even"), "{}", part.display());
        numbers.extend(lines.map(|l| l.split(',').next().unwrap().parse::<u64>().unwrap()));
    }
    assert_eq!(numbers, (1..=500).collect::<Vec<_>>());
}
