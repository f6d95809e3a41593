//! Fusion: what the fused executor costs over a hand-written loop.
//!
//! The same 10-stage map/filter chain over the integers `0..10_000_000`, run four ways:
//!
//! - `hand_loop`: one `for` loop calling the ten stage functions, summing what survives;
//! - `fused`: a `pipeline!` (`read(Memory) -> 10 stages -> write(SumSink)`), as a user writes it:
//!   the stages and the sink fuse into one loop on the source's thread;
//! - `fused_no_sink_channel`: the same pipeline summing in a last `inspect` and ending in `drop()`
//!   (named from when sinks had a channel of their own; now a check that `write` costs nothing);
//! - `tokio_tasks`: each stage its own tokio task (2 worker threads), stages joined by a bounded
//!   `tokio::sync::mpsc` channel each, elements sent in batches of 1024 (`Vec<u64>`).
//!
//! All four use the same stage functions and must produce the same count and wrapping sum.
//! Besides criterion's figures, `main` runs the variants interleaved and prints the throughput
//! ratios measured in that one process (see BENCHMARKS.md). `TANDEM_BENCH_RUNS` sets the rounds
//! (0: criterion only), `TANDEM_BENCH_BATCH` the pipeline's batch size.

#[path = "common/mod.rs"]
mod common;

use std::hint::black_box;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput};
use tandem::io::{Commit, Sink};
use tandem::prelude::*;
use tokio::sync::mpsc;

/// Elements per run in `cargo bench`; `cargo test --benches` uses a hundredth of it.
const ELEMENTS: u64 = 10_000_000;
/// Elements per message in the task-per-stage variant.
const TASK_BATCH: usize = 1024;
/// Batches each task-per-stage channel holds (the pipeline's default channel capacity).
const TASK_CHANNEL_CAPACITY: usize = 16;

// The ten stages. Multiplications, shifts and data-dependent filters, so that no stage can be
// folded away or hoisted; the three filters drop about 1/7, 1/16 and 1/16 of what reaches them.

fn s1_mix(x: u64) -> u64 {
    x.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
fn s2_fold(x: u64) -> u64 {
    x ^ (x >> 29)
}
fn s3_keep(x: &u64) -> bool {
    !x.is_multiple_of(7)
}
fn s4_offset(x: u64) -> u64 {
    x.wrapping_add(0x632B_E59B_D9B4_E019)
}
fn s5_rotate(x: u64) -> u64 {
    x.rotate_left(17)
}
fn s6_keep(x: &u64) -> bool {
    x & 0xF != 0
}
fn s7_mix(x: u64) -> u64 {
    x.wrapping_mul(0xBF58_476D_1CE4_E5B9)
}
fn s8_fold(x: u64) -> u64 {
    x ^ (x >> 31)
}
fn s9_keep(x: &u64) -> bool {
    x >> 60 != 3
}
fn s10_narrow(x: u64) -> u64 {
    x >> 8
}

/// What survives the chain: how many elements and their wrapping sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Total {
    count: u64,
    sum: u64,
}

impl Total {
    #[inline(always)]
    fn add(&mut self, x: u64) {
        self.count += 1;
        self.sum = self.sum.wrapping_add(x);
    }
}

// ---------------------------------------------------------------------------------------------
// (b) the hand-written loop

fn hand_loop(n: u64) -> Total {
    let mut total = Total::default();
    for x in 0..n {
        let x = s2_fold(s1_mix(x));
        if !s3_keep(&x) {
            continue;
        }
        let x = s5_rotate(s4_offset(x));
        if !s6_keep(&x) {
            continue;
        }
        let x = s8_fold(s7_mix(x));
        if !s9_keep(&x) {
            continue;
        }
        total.add(s10_narrow(x));
    }
    total
}

// ---------------------------------------------------------------------------------------------
// (a) the fused pipeline

/// Where a run's total is left; each run gets a fresh slot.
type Slot = Arc<Mutex<Option<Total>>>;

/// A sink that only sums: the cheapest `write` there is.
struct SumSink {
    total: Total,
    out: Slot,
}

impl SumSink {
    fn new(out: &Slot) -> Self {
        Self {
            total: Total::default(),
            out: out.clone(),
        }
    }
}

impl Sink<u64> for SumSink {
    fn describe(&self) -> String {
        "sum".into()
    }

    fn write(&mut self, item: u64) -> Result<(), String> {
        self.total.add(item);
        Ok(())
    }

    fn finish(&mut self) -> tandem::Result<Option<Box<dyn Commit>>> {
        *self.out.lock().unwrap() = Some(self.total);
        Ok(None)
    }
}

/// Sums in a stage closure and leaves the total in its slot when the segment drops the closure.
struct Accumulator {
    total: Total,
    out: Slot,
}

impl Accumulator {
    fn new(out: &Slot) -> Self {
        Self {
            total: Total::default(),
            out: out.clone(),
        }
    }

    // A method, not `sum.total.add(..)` in the closure: a `move` closure naming only the field
    // would capture a copy of it and leave the accumulator behind.
    #[inline(always)]
    fn add(&mut self, x: u64) {
        self.total.add(x);
    }
}

impl Drop for Accumulator {
    fn drop(&mut self) {
        *self.out.lock().unwrap() = Some(self.total);
    }
}

struct FusionArgs {
    n: u64,
    out: Slot,
}

pipeline! {
    /// Ten element-wise stages fused into the source's loop, summed by a sink.
    Fused(args: FusionArgs) {
        read(Memory::new(0..args.n))
            -> map(s1_mix) -> map(s2_fold) -> filter(s3_keep)
            -> map(s4_offset) -> map(s5_rotate) -> filter(s6_keep)
            -> map(s7_mix) -> map(s8_fold) -> filter(s9_keep)
            -> map(s10_narrow)
            -> write(SumSink::new(&args.out));
    }
}

pipeline! {
    /// The same stages, summed inside the fused segment: no channel at all.
    FusedNoSinkChannel(args: FusionArgs) {
        read(Memory::new(0..args.n))
            -> map(s1_mix) -> map(s2_fold) -> filter(s3_keep)
            -> map(s4_offset) -> map(s5_rotate) -> filter(s6_keep)
            -> map(s7_mix) -> map(s8_fold) -> filter(s9_keep)
            -> map(s10_narrow)
            -> inspect({
                let mut sum = Accumulator::new(&args.out);
                move |x: &u64| sum.add(*x)
            })
            -> drop();
    }
}

fn fused(n: u64) -> Total {
    let args = FusionArgs {
        n,
        out: Slot::default(),
    };
    let summary = Fused::run_blocking(&args, &common::run_config()).expect("fused run");
    assert!(summary.totals().balanced());
    let total = args.out.lock().unwrap().take();
    total.expect("the sink finished")
}

fn fused_no_sink_channel(n: u64) -> Total {
    let args = FusionArgs {
        n,
        out: Slot::default(),
    };
    let summary =
        FusedNoSinkChannel::run_blocking(&args, &common::run_config()).expect("fused run");
    assert!(summary.totals().balanced());
    let total = args.out.lock().unwrap().take();
    total.expect("the accumulator was dropped")
}

// ---------------------------------------------------------------------------------------------
// (c) one tokio task per stage

type Batch = Vec<u64>;

fn spawn_map(
    mut rx: mpsc::Receiver<Batch>,
    f: impl Fn(u64) -> u64 + Send + 'static,
) -> mpsc::Receiver<Batch> {
    let (tx, next) = mpsc::channel(TASK_CHANNEL_CAPACITY);
    tokio::spawn(async move {
        while let Some(mut batch) = rx.recv().await {
            for x in &mut batch {
                *x = f(*x);
            }
            if tx.send(batch).await.is_err() {
                break;
            }
        }
    });
    next
}

fn spawn_filter(
    mut rx: mpsc::Receiver<Batch>,
    keep: impl Fn(&u64) -> bool + Send + 'static,
) -> mpsc::Receiver<Batch> {
    let (tx, next) = mpsc::channel(TASK_CHANNEL_CAPACITY);
    tokio::spawn(async move {
        while let Some(mut batch) = rx.recv().await {
            batch.retain(&keep);
            if !batch.is_empty() && tx.send(batch).await.is_err() {
                break;
            }
        }
    });
    next
}

fn tokio_tasks(runtime: &tokio::runtime::Runtime, n: u64) -> Total {
    runtime.block_on(async move {
        let (tx, rx) = mpsc::channel::<Batch>(TASK_CHANNEL_CAPACITY);
        tokio::spawn(async move {
            let mut start = 0;
            while start < n {
                let end = (start + TASK_BATCH as u64).min(n);
                if tx.send((start..end).collect()).await.is_err() {
                    break;
                }
                start = end;
            }
        });
        let rx = spawn_map(rx, s1_mix);
        let rx = spawn_map(rx, s2_fold);
        let rx = spawn_filter(rx, s3_keep);
        let rx = spawn_map(rx, s4_offset);
        let rx = spawn_map(rx, s5_rotate);
        let rx = spawn_filter(rx, s6_keep);
        let rx = spawn_map(rx, s7_mix);
        let rx = spawn_map(rx, s8_fold);
        let rx = spawn_filter(rx, s9_keep);
        let mut rx = spawn_map(rx, s10_narrow);
        let sum = tokio::spawn(async move {
            let mut total = Total::default();
            while let Some(batch) = rx.recv().await {
                for x in batch {
                    total.add(x);
                }
            }
            total
        });
        sum.await.expect("sum task")
    })
}

// ---------------------------------------------------------------------------------------------
// Measuring

fn main() {
    let (full, runs) = common::bench_mode(20);
    let n = if full { ELEMENTS } else { ELEMENTS / 100 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");

    let expected = hand_loop(n);
    assert_eq!(fused(n), expected, "fused pipeline vs hand loop");
    assert_eq!(
        fused_no_sink_channel(n),
        expected,
        "fused pipeline without a sink channel vs hand loop"
    );
    assert_eq!(
        tokio_tasks(&runtime, n),
        expected,
        "tokio tasks vs hand loop"
    );
    println!(
        "fusion: {n} elements in, {} out, wrapping sum {:#x}: identical in all variants",
        expected.count, expected.sum
    );

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    {
        let mut group = criterion.benchmark_group("fusion");
        group.throughput(Throughput::Elements(n));
        group.sampling_mode(SamplingMode::Flat);
        group.bench_function("hand_loop", |b| b.iter(|| hand_loop(black_box(n))));
        group.bench_function("fused", |b| b.iter(|| fused(black_box(n))));
        group.bench_function("fused_no_sink_channel", |b| {
            b.iter(|| fused_no_sink_channel(black_box(n)))
        });
        group.bench_function("tokio_tasks", |b| {
            b.iter(|| tokio_tasks(&runtime, black_box(n)))
        });
        group.finish();
    }

    if runs > 0 {
        common::interleaved(
            "fusion",
            runs,
            n,
            &mut [
                ("hand_loop", &mut || hand_loop(black_box(n))),
                ("fused", &mut || fused(black_box(n))),
                ("fused_no_sink_channel", &mut || {
                    fused_no_sink_channel(black_box(n))
                }),
                ("tokio_tasks", &mut || tokio_tasks(&runtime, black_box(n))),
            ],
        );
    }
    criterion.final_summary();
}
