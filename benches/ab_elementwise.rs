//! The A/B workload without models: what the pipeline costs over a hand-written loop when the
//! work is reading and parsing JSON lines, a map, a filter, a sticky 50/50 split by user, tagging
//! each arm and counting per arm.
//!
//! Input: 1,000,000 JSON lines `{"user_id": i % 10007, "ad_id": i % 97, "score": (i % 1000) / 1000}`,
//! written once to a temporary file (so it is read from the page cache).
//!
//! - `pipeline`: `read(JsonLines) -> map(double score) -> filter(score >= 0) -> partition(split_by
//!   user_id, [50, 50])`, each arm tagged by a `map`, `merge`d and written to a small counting sink.
//! - `pipeline_no_merge`: a diagnostic, not the workload: the same stages with each arm counted in
//!   a last `inspect` and ended by `drop()`, no merge (the merge of two arms of one source is a
//!   fused junction, so both variants run on one thread).
//! - `hand_loop`: one thread, `BufReader::read_line` into a reused `String`, `serde_json::from_str`,
//!   the same double, filter, CRC32-of-the-decimal-user-id arm choice, tag and count.
//!
//! All must give the same count and the same sum of doubled scores per arm. Besides criterion's
//! figures, `main` runs the variants interleaved and prints the throughput ratios measured in that
//! one process (see BENCHMARKS.md). `TANDEM_BENCH_RUNS` sets the rounds (0: criterion only),
//! `TANDEM_BENCH_BATCH` the pipeline's batch size.

#[path = "common/ab.rs"]
mod ab;
#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput};
use tandem::prelude::*;

use ab::{hand_loop, pipeline, write_input, ArmCounts, Req, Served, CHALLENGER, CHAMPION, LINES};

/// Counts an arm inside its fused chain and hands the counts over when the segment drops it.
struct ArmTally {
    counts: ArmCounts,
    out: Arc<Mutex<Vec<ArmCounts>>>,
}

impl ArmTally {
    fn new(out: &Arc<Mutex<Vec<ArmCounts>>>) -> Self {
        Self {
            counts: ArmCounts::default(),
            out: out.clone(),
        }
    }

    // A method, so that a `move` closure captures the whole tally, not a copy of a field.
    #[inline]
    fn add(&mut self, served: &Served) {
        self.counts.add(served);
    }
}

impl Drop for ArmTally {
    fn drop(&mut self) {
        let counts = std::mem::take(&mut self.counts);
        self.out.lock().unwrap().push(counts);
    }
}

struct NoMergeArgs {
    input: PathBuf,
    tallies: Arc<Mutex<Vec<ArmCounts>>>,
}

pipeline! {
    /// The same stages, each arm counted in its own fused chain: no merge, no channel at all.
    AbNoMerge(args: NoMergeArgs) {
        requests = read(JsonLines::<Req>::open(&args.input))
            -> map(|mut r: Req| {
                r.score *= 2.0;
                r
            })
            -> filter(|r: &Req| r.score >= 0.0);
        [champ, chall] = requests -> partition(split_by(|r: &Req| r.user_id, [50, 50]));
        champ -> map(|req: Req| Served { arm: CHAMPION, req })
            -> inspect({
                let mut tally = ArmTally::new(&args.tallies);
                move |s: &Served| tally.add(s)
            })
            -> drop();
        chall -> map(|req: Req| Served { arm: CHALLENGER, req })
            -> inspect({
                let mut tally = ArmTally::new(&args.tallies);
                move |s: &Served| tally.add(s)
            })
            -> drop();
    }
}

fn pipeline_no_merge(input: &Path) -> ArmCounts {
    let args = NoMergeArgs {
        input: input.to_owned(),
        tallies: Arc::default(),
    };
    let summary = AbNoMerge::run_blocking(&args, &common::run_config()).expect("pipeline run");
    let totals = summary.totals();
    assert!(totals.balanced() && totals.dead == 0, "{summary}");
    let tallies = std::mem::take(&mut *args.tallies.lock().unwrap());
    ArmCounts(tallies.into_iter().flat_map(|t| t.0).collect()).sorted()
}

// ---------------------------------------------------------------------------------------------
// Measuring

fn main() {
    let (full, runs) = common::bench_mode(20);
    let lines = if full { LINES } else { LINES / 100 };

    let dir = tempfile::tempdir().expect("a temporary directory");
    let input = dir.path().join("requests.jsonl");
    write_input(&input, lines);

    let expected = hand_loop(&input);
    assert_eq!(pipeline(&input), expected, "pipeline vs hand loop");
    assert_eq!(
        pipeline_no_merge(&input),
        expected,
        "pipeline without merge vs hand loop"
    );
    assert_eq!(
        expected.0.iter().map(|&(_, count, _)| count).sum::<u64>(),
        lines
    );
    println!("ab_elementwise: {lines} lines, per arm (arm, count, sum of doubled scores): {expected:?}, identical in all variants");

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .configure_from_args();
    {
        let mut group = criterion.benchmark_group("ab_elementwise");
        group.throughput(Throughput::Elements(lines));
        group.sampling_mode(SamplingMode::Flat);
        group.bench_function("hand_loop", |b| b.iter(|| hand_loop(black_box(&input))));
        group.bench_function("pipeline", |b| b.iter(|| pipeline(black_box(&input))));
        group.bench_function("pipeline_no_merge", |b| {
            b.iter(|| pipeline_no_merge(black_box(&input)))
        });
        group.finish();
    }

    if runs > 0 {
        common::interleaved(
            "ab_elementwise",
            runs,
            lines,
            &mut [
                ("hand_loop", &mut || hand_loop(&input)),
                ("pipeline", &mut || pipeline(&input)),
                ("pipeline_no_merge", &mut || pipeline_no_merge(&input)),
            ],
        );
    }
    criterion.final_summary();
}
