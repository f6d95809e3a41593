//! Is one timely worker as fast as today's executor, and do two workers go further? The
//! measurement that decides the design of running pipelines on timely dataflow (issue 13,
//! "Beyond one machine"; `tandem::distributed`, feature `timely`).
//!
//! Workload: `ab_elementwise`'s (1,000,000 JSON lines in a temporary file, read from the page
//! cache; parse, double the score, filter, sticky 50/50 split by CRC32 of the user id, tag the arm,
//! count per arm).
//!
//! - `pipeline`: today's executor, the `pipeline!` of `ab_elementwise` (a thread per segment).
//! - `pipeline_1_timely_worker`: the same `pipeline!` on one timely worker
//!   (`tandem::distributed::run_job` with one worker): its fused segment is a timely operator on
//!   the worker's thread, as on each worker of a split run.
//! - `pipeline_2_workers`: the same `pipeline!` split across 2 workers (`--workers 2`,
//!   `tandem::distributed::run_job`): each runs the fused segment as a timely operator on its
//!   byte range of the file.
//! - `hand_loop`: `ab_elementwise`'s hand-written loop, one thread.
//! - `timely_1_worker`, `timely_2_workers`: `tandem::distributed::run_in_operator` with 1 and 2
//!   worker threads in this process. Each worker reads its share of the file (a byte range,
//!   from the first line starting in it to the last line starting in it) and runs the hand loop's
//!   per-element work inside ONE timely operator, 1024 lines per activation, counting into a
//!   per-worker sink; the per-worker counts are added up at the end. The lowering's shape (each
//!   fused segment one operator around its push chain), with the hand loop's body standing in
//!   for the chain.
//! - `timely_2_processes` (with `TANDEM_BENCH_PROCESSES=1`): two timely processes of one worker
//!   each, connected over TCP on localhost, simulated by two threads of this process each
//!   starting its own member of the cluster; connection set-up included.
//!
//! All must give the same count per arm; the sums of doubled scores are equal up to rounding (the
//! workers add them in another order). Prints the interleaved comparison (times, ratios to the
//! first variant) and, for the timely variants, the time the slowest worker spent on its share
//! (from its operator's first activation to its last line: without timely's start-up, the wait
//! for the other workers and the shut-down). `TANDEM_BENCH_RUNS` sets the rounds (default 5 with `cargo bench`, 1 without,
//! so `cargo test --benches --features timely` stays quick).
//!
//! `CARGO_TARGET_DIR=... cargo bench --bench timely_worker --features timely`

#[path = "common/ab.rs"]
mod ab;
#[path = "common/mod.rs"]
mod common;

use std::cell::RefCell;
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tandem::cluster::Cluster;
use tandem::distributed::{run_in_operator, WorkerId, WorkerTask};

use ab::{
    hand_loop, pipeline, pipeline_one_timely_worker, pipeline_with, serve_line, write_input,
    ArmCounts, LINES,
};

/// Lines per activation of the operator.
const CHUNK: usize = 1024;

/// One worker's share of the A/B workload: the lines that start in its byte range of the file.
struct AbShare {
    reader: BufReader<File>,
    /// Offset of the next line to read.
    pos: u64,
    /// The first offset that is not this worker's: a line starting here is the next worker's.
    end: u64,
    line: String,
    counts: ArmCounts,
    /// When the operator first ran this task.
    started: Option<Instant>,
    /// How long from then until the task had read its last line.
    worked: Duration,
}

impl AbShare {
    fn open(path: &Path, id: WorkerId) -> Self {
        let mut file = File::open(path).expect("open input");
        let len = file.metadata().expect("input metadata").len();
        let (index, peers) = (id.index as u64, id.peers as u64);
        let start = len * index / peers;
        let end = len * (index + 1) / peers;
        let mut pos = start;
        if start > 0 {
            // The line holding byte `start - 1` is the previous worker's (it starts before
            // `start`); ours begin after its newline.
            file.seek(SeekFrom::Start(start - 1)).expect("seek");
        }
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        if start > 0 {
            let mut skipped = Vec::new();
            let n = reader.read_until(b'\n', &mut skipped).expect("read");
            pos = start - 1 + n as u64;
        }
        Self {
            reader,
            pos,
            end,
            line: String::new(),
            counts: ArmCounts::default(),
            started: None,
            worked: Duration::ZERO,
        }
    }
}

impl WorkerTask for AbShare {
    /// The counts, and the time from the operator's first activation to the task's last line.
    type Output = (ArmCounts, Duration);

    fn step(&mut self) -> bool {
        let started = *self.started.get_or_insert_with(Instant::now);
        let more = self.chunk();
        if !more {
            self.worked = started.elapsed();
        }
        more
    }

    fn finish(self) -> (ArmCounts, Duration) {
        (self.counts, self.worked)
    }
}

impl AbShare {
    /// Up to `CHUNK` lines; `false` once there are no more.
    fn chunk(&mut self) -> bool {
        for _ in 0..CHUNK {
            if self.pos >= self.end {
                return false;
            }
            // The hand loop's body.
            self.line.clear();
            let n = self.reader.read_line(&mut self.line).expect("read a line");
            if n == 0 {
                return false;
            }
            self.pos += n as u64;
            serve_line(&self.line, &mut self.counts);
        }
        // Not `true`: a share that ends with a chunk would ask for one activation more.
        self.pos < self.end
    }
}

/// Adds up the workers' counts per arm.
fn total(parts: impl IntoIterator<Item = ArmCounts>) -> ArmCounts {
    let mut all = ArmCounts::default();
    for part in parts {
        all.merge(part);
    }
    all.sorted()
}

/// The counts, and the longest time a worker of this process spent on its share (from its
/// operator's first activation to its last line: the run's time less timely's start-up, the wait
/// for other workers and the shut-down).
fn timely(input: &Path, cluster: &Cluster) -> (ArmCounts, Duration) {
    let input = input.to_owned();
    let parts = run_in_operator(cluster, move |id| AbShare::open(&input, id)).expect("timely run");
    let busy = parts
        .iter()
        .map(|(_, busy)| *busy)
        .max()
        .unwrap_or_default();
    (total(parts.into_iter().map(|(counts, _)| counts)), busy)
}

/// Two members of a two-process cluster (one worker each) in two threads of this process,
/// connected over TCP on localhost; each counts its half.
fn timely_two_processes(input: &Path, dir: &Path) -> (ArmCounts, Duration) {
    // Free ports, found by binding port 0 (and letting go: a race no one else here runs).
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            listener.local_addr().expect("its address").port()
        })
        .collect();
    let hostfile = dir.join("hosts.txt");
    let hosts: String = ports.iter().map(|p| format!("127.0.0.1:{p}\n")).collect();
    std::fs::write(&hostfile, hosts).expect("write the hostfile");
    let members: Vec<(ArmCounts, Duration)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|process| {
                let cluster = Cluster {
                    workers: 1,
                    processes: 2,
                    process,
                    hostfile: Some(hostfile.clone()),
                };
                s.spawn(move || timely(input, &cluster))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let busy = members
        .iter()
        .map(|(_, busy)| *busy)
        .max()
        .unwrap_or_default();
    (total(members.into_iter().map(|(counts, _)| counts)), busy)
}

/// Same counts per arm, and the same sums up to rounding.
fn assert_same(got: &ArmCounts, expected: &ArmCounts, what: &str) {
    assert_eq!(
        got.0.len(),
        expected.0.len(),
        "{what}: {got:?} vs {expected:?}"
    );
    for (g, e) in got.0.iter().zip(&expected.0) {
        assert_eq!((g.0, g.1), (e.0, e.1), "{what}: {got:?} vs {expected:?}");
        assert!(
            (g.2 - e.2).abs() <= 1e-9 * e.2.abs(),
            "{what}: {got:?} vs {expected:?}"
        );
    }
}

/// The `pipeline!` itself split across `workers` threads (`--workers`): each worker runs the
/// fused segment as a timely operator on its byte range of the file, with a counter of its own.
fn pipeline_on(input: &Path, workers: usize) -> ArmCounts {
    let mut config = common::run_config();
    config.cluster = Cluster::threads(workers);
    pipeline_with(input, config)
}

fn main() {
    let (full, runs) = common::bench_mode(5);
    let lines = if full { LINES } else { LINES / 100 };
    let processes = std::env::var("TANDEM_BENCH_PROCESSES").is_ok_and(|v| v == "1");

    let dir = tempfile::tempdir().expect("a temporary directory");
    let input: PathBuf = dir.path().join("requests.jsonl");
    write_input(&input, lines);

    let expected = hand_loop(&input);
    assert_eq!(pipeline(&input), expected, "pipeline vs hand loop");
    assert_same(
        &pipeline_one_timely_worker(&input),
        &expected,
        "the pipeline on one timely worker",
    );
    assert_eq!(
        timely(&input, &Cluster::default()).0,
        expected,
        "one timely worker vs hand loop"
    );
    for workers in [2, 3] {
        let (got, _) = timely(&input, &Cluster::threads(workers));
        assert_same(&got, &expected, &format!("{workers} timely workers"));
        let got = pipeline_on(&input, workers).sorted();
        assert_same(
            &got,
            &expected,
            &format!("the pipeline on {workers} workers"),
        );
    }
    if processes {
        let (got, _) = timely_two_processes(&input, dir.path());
        assert_same(&got, &expected, "two timely processes");
    }
    assert_eq!(
        expected.0.iter().map(|&(_, count, _)| count).sum::<u64>(),
        lines
    );
    println!("timely_worker: {lines} lines, per arm (arm, count, sum of doubled scores): {expected:?}, the same in all variants");
    println!(
        "timely_worker: {} CPUs available to this process",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    if runs > 0 {
        let one = Cluster::default();
        let two = Cluster::threads(2);
        // Per timely variant, the time its workers spent in their operator, run by run.
        let busy: [RefCell<Vec<f64>>; 3] = Default::default();
        let timed = |k: usize, (counts, spent): (ArmCounts, Duration)| {
            busy[k].borrow_mut().push(spent.as_secs_f64());
            counts
        };
        let mut run_pipeline = || pipeline(&input);
        let mut run_pipeline_two = || pipeline_on(&input, 2);
        let mut run_pipeline_timely = || pipeline_one_timely_worker(&input);
        let mut run_hand = || hand_loop(&input);
        let mut run_one = || timed(0, timely(&input, &one));
        let mut run_two = || timed(1, timely(&input, &two));
        let mut run_processes = || timed(2, timely_two_processes(&input, dir.path()));
        let mut variants: Vec<(&str, &mut dyn FnMut() -> ArmCounts)> = vec![
            ("pipeline", &mut run_pipeline),
            ("pipeline_1_timely_worker", &mut run_pipeline_timely),
            ("pipeline_2_workers", &mut run_pipeline_two),
            ("hand_loop", &mut run_hand),
            ("timely_1_worker", &mut run_one),
            ("timely_2_workers", &mut run_two),
        ];
        if processes {
            variants.push(("timely_2_processes", &mut run_processes));
        }
        common::interleaved("timely_worker", runs, lines, &mut variants);
        let names = ["timely_1_worker", "timely_2_workers", "timely_2_processes"];
        for (name, spent) in names.iter().zip(&busy) {
            let spent = spent.borrow();
            if spent.is_empty() {
                continue;
            }
            let mean = spent.iter().sum::<f64>() / spent.len() as f64;
            println!(
                "  {name:<22} on its share: mean {:>8.2} ms  {:>7.2} M elements/s (the slowest worker, first activation to last line)",
                mean * 1e3,
                lines as f64 / mean / 1e6
            );
        }
    }
}
