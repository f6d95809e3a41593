//! The A/B element-wise workload shared by `ab_elementwise` and `timely_worker`: its input, the
//! hand-written loop and the pipeline (see `benches/ab_elementwise.rs` for what each does).
//! Included with `#[path = "common/ab.rs"] mod ab;` beside `mod common;`.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tandem::io::{Commit, Sink};
use tandem::prelude::*;

use super::common;

/// Lines per run in `cargo bench`; `cargo test --benches` uses a hundredth of it.
pub const LINES: u64 = 1_000_000;

#[derive(Debug, Deserialize, Serialize)]
pub struct Req {
    pub user_id: u64,
    pub ad_id: u32,
    pub score: f64,
}

/// A request tagged with the arm that served it.
pub struct Served {
    pub arm: &'static str,
    pub req: Req,
}

pub const CHAMPION: &str = "champion";
pub const CHALLENGER: &str = "challenger";

/// Per arm: how many requests and the sum of their (doubled) scores. Scores are summed in input
/// order within each arm in both variants, so the sums must match exactly.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArmCounts(pub Vec<(&'static str, u64, f64)>);

impl ArmCounts {
    #[inline]
    pub fn add(&mut self, served: &Served) {
        match self.0.iter_mut().find(|(arm, ..)| *arm == served.arm) {
            Some((_, count, score)) => {
                *count += 1;
                *score += served.req.score;
            }
            None => self.0.push((served.arm, 1, served.req.score)),
        }
    }

    /// Adds another worker's counts (a split run has a counter per worker).
    pub fn merge(&mut self, other: ArmCounts) {
        for (arm, count, score) in other.0 {
            match self.0.iter_mut().find(|(a, ..)| *a == arm) {
                Some((_, c, s)) => {
                    *c += count;
                    *s += score;
                }
                None => self.0.push((arm, count, score)),
            }
        }
    }

    pub fn sorted(mut self) -> Self {
        self.0.sort_by_key(|&(arm, ..)| arm);
        self
    }
}

pub fn write_input(path: &Path, lines: u64) {
    let mut out = BufWriter::new(File::create(path).expect("create the input file"));
    for i in 0..lines {
        let req = Req {
            user_id: i % 10007,
            ad_id: (i % 97) as u32,
            score: (i % 1000) as f64 / 1000.0,
        };
        serde_json::to_writer(&mut out, &req).expect("write a line");
        out.write_all(b"\n").expect("write a line");
    }
    out.flush().expect("flush the input file");
}

// ---------------------------------------------------------------------------------------------
// The hand-written loop

/// `split_by(|r| r.user_id, [50, 50])` by hand: CRC32 of the decimal user id, multiply-shift onto
/// 0..100, the first half is the champion.
#[inline]
pub fn arm_of(user_id: u64) -> &'static str {
    let hash = crc32fast::hash(itoa::Buffer::new().format(user_id).as_bytes());
    if (u64::from(hash) * 100) >> 32 < 50 {
        CHAMPION
    } else {
        CHALLENGER
    }
}

/// The workload's work on one JSON line, as the hand loop does it: parse, double the score,
/// drop a negative one, tag the arm, count.
#[inline(always)]
pub fn serve_line(line: &str, counts: &mut ArmCounts) {
    let mut req: Req = serde_json::from_str(line).expect("a valid line");
    req.score *= 2.0;
    if req.score < 0.0 {
        return;
    }
    let served = Served {
        arm: arm_of(req.user_id),
        req,
    };
    counts.add(&served);
}

pub fn hand_loop(path: &Path) -> ArmCounts {
    let mut reader = BufReader::with_capacity(256 * 1024, File::open(path).expect("open input"));
    let mut line = String::new();
    let mut counts = ArmCounts::default();
    loop {
        line.clear();
        if reader.read_line(&mut line).expect("read a line") == 0 {
            break;
        }
        serve_line(&line, &mut counts);
    }
    counts.sorted()
}

// ---------------------------------------------------------------------------------------------
// The pipeline

/// The sink: counts per arm, hands the counts over when the run ends well.
struct ArmCounter {
    counts: ArmCounts,
    out: Arc<Mutex<Option<ArmCounts>>>,
}

impl Sink<Served> for ArmCounter {
    fn describe(&self) -> String {
        "per-arm counter".into()
    }

    // It does not look at positions: a split run's later workers need not count the lines
    // before their part of the file for it.
    fn uses_positions(&self) -> bool {
        false
    }

    fn write(&mut self, served: Served) -> Result<(), String> {
        self.counts.add(&served);
        Ok(())
    }

    fn finish(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        // A split run has one counter per worker: they add up.
        let counts = std::mem::take(&mut self.counts);
        self.out
            .lock()
            .unwrap()
            .get_or_insert_with(ArmCounts::default)
            .merge(counts);
        Ok(None)
    }
}

pub struct AbArgs {
    pub input: PathBuf,
    pub counts: Arc<Mutex<Option<ArmCounts>>>,
}

impl AbArgs {
    fn counter(&self) -> ArmCounter {
        ArmCounter {
            counts: ArmCounts::default(),
            out: self.counts.clone(),
        }
    }
}

pipeline! {
    /// Sticky 50/50 split of requests by user, each arm tagged, counted per arm.
    AbElementwise(args: AbArgs) {
        requests = read(JsonLines::<Req>::open(&args.input))
            -> map(|mut r: Req| {
                r.score *= 2.0;
                r
            })
            -> filter(|r: &Req| r.score >= 0.0);
        [champ, chall] = requests -> partition(split_by(|r: &Req| r.user_id, [50, 50]));
        a = champ -> map(|req: Req| Served { arm: CHAMPION, req });
        b = chall -> map(|req: Req| Served { arm: CHALLENGER, req });
        merge(a, b) -> write(args.counter());
    }
}

// ---------------------------------------------------------------------------------------------
// Running the pipeline

pub fn pipeline(input: &Path) -> ArmCounts {
    pipeline_with(input, common::run_config())
}

/// The `pipeline!` on one timely worker: what each worker of `--workers 2` runs (its fused
/// segment as a timely operator on the worker's thread), on the whole file. `--workers 1` runs
/// the executor instead (a thread per segment).
#[cfg(feature = "timely")]
#[allow(dead_code)]
pub fn pipeline_one_timely_worker(input: &Path) -> ArmCounts {
    let args = AbArgs {
        input: input.to_owned(),
        counts: Arc::default(),
    };
    let mut config = common::run_config();
    config.cluster = tandem::cluster::Cluster::threads(1);
    let summary = tandem::distributed::run_job::<AbElementwise>(&args, &config)
        .expect("pipeline run on one timely worker");
    let totals = summary.totals();
    assert!(totals.balanced() && totals.dead == 0, "{summary}");
    let counts = args.counts.lock().unwrap().take();
    counts.expect("the sink finished").sorted()
}

/// The pipeline run with `config` (on several workers, say).
pub fn pipeline_with(input: &Path, config: RunConfig) -> ArmCounts {
    let args = AbArgs {
        input: input.to_owned(),
        counts: Arc::default(),
    };
    let summary = AbElementwise::run_blocking(&args, &config).expect("pipeline run");
    let totals = summary.totals();
    assert!(totals.balanced() && totals.dead == 0, "{summary}");
    let counts = args.counts.lock().unwrap().take();
    counts.expect("the sink finished").sorted()
}
