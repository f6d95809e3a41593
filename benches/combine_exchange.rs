//! What the exchange by key of a split `combine_per_key` costs, with and without
//! pre-aggregation (issue 13, "Beyond one machine"; `tandem::exchange`, feature `timely`).
//!
//! Workload: 1,000,000 in-memory elements, 10,000 keys (a multiplicative hash of `n`, so that
//! every worker sees every key), event time `n` ms, fixed
//! windows of 100 s (10 windows), `combine_per_key(key, Sum)` over the element, results collected
//! in memory (100,000 of them).
//!
//! - `hand_loop`: one thread, a `HashMap` per window, no pipeline (the anchor).
//! - `pipeline`: the `pipeline!` on one worker (no exchange).
//! - `2_workers`: the same on 2 workers of this process (`Cluster::threads(2)`), each reading every
//!   other element, folding per window and key, and shipping each window's accumulators to the
//!   worker owning the key once its watermark passes the window.
//! - `2_workers_no_preaggregation`: the same with `TANDEM_EXCHANGE_PREAGGREGATE=0`: every element
//!   shipped as an accumulator of its own (what an exchange of the elements would ship).
//!
//! Every variant must give the same results; the bytes and accumulators each split variant
//! shipped between the workers are printed (from the run's summary). `TANDEM_BENCH_RUNS` sets
//! the rounds (default 5 with `cargo bench`, 1 without).
//!
//! `CARGO_TARGET_DIR=... cargo bench --bench combine_exchange --features timely`

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::Duration;

use tandem::cluster::Cluster;
use tandem::prelude::*;
use tandem::summary::Exchanged;

const ELEMENTS: u64 = 1_000_000;
const KEYS: u64 = 10_000;
const WINDOW_MS: u64 = 100_000;

pipeline! {
    /// Sums per key per 100 s window.
    KeyedSums(args: Collector<Combined<u64, f64>>) {
        read(Memory::new(0..ELEMENTS))
            -> window(Fixed::new(Duration::from_millis(WINDOW_MS)), |n: &u64| *n)
            -> combine_per_key(key, Sum::of(|n: &u64| *n as f64))
            -> write(args.clone());
    }
}

/// The key of element `n`: a multiplicative hash, so that the workers (each reading every n-th
/// element) all see every key.
fn key(n: &u64) -> u64 {
    (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % KEYS
}

/// (window start, key) -> sum, from any variant.
type Results = Vec<((i64, u64), f64)>;

fn hand_loop() -> Results {
    let mut windows: Vec<HashMap<u64, f64>> = Vec::new();
    for n in 0..ELEMENTS {
        let w = (n / WINDOW_MS) as usize;
        if windows.len() <= w {
            windows.resize_with(w + 1, HashMap::new);
        }
        *windows[w].entry(key(&n)).or_default() += n as f64;
    }
    let mut out: Results = windows
        .into_iter()
        .enumerate()
        .flat_map(|(w, sums)| {
            sums.into_iter()
                .map(move |(key, sum)| (((w as u64 * WINDOW_MS) as i64, key), sum))
        })
        .collect();
    out.sort_by_key(|r| r.0);
    out
}

fn pipeline(workers: usize, preaggregate: bool) -> (Results, Exchanged) {
    // Read by the exchange when the run starts; nothing else runs meanwhile.
    std::env::set_var(
        "TANDEM_EXCHANGE_PREAGGREGATE",
        if preaggregate { "1" } else { "0" },
    );
    let out = Collector::new();
    let config = RunConfig {
        cluster: Cluster::threads(workers),
        ..common::run_config()
    };
    let summary = tandem::job::run_pipeline::<KeyedSums>(&out, &config).expect("the run");
    assert!(summary.totals().balanced(), "{summary}");
    let mut results: Results = out
        .take()
        .into_iter()
        .map(|c| ((c.window.start, c.key), c.value))
        .collect();
    results.sort_by_key(|r| r.0);
    (results, summary.exchanged)
}

fn main() {
    let (_, runs) = common::bench_mode(5);
    let expected = hand_loop();
    // Nearly every key in every window.
    assert!(expected.len() as u64 > KEYS * ELEMENTS / WINDOW_MS * 99 / 100);
    assert_eq!(pipeline(1, true).0, expected, "one worker");
    for preaggregate in [true, false] {
        let (results, exchanged) = pipeline(2, preaggregate);
        // Sums of integers below 2^53: exact whatever the order of the additions.
        assert_eq!(
            results, expected,
            "2 workers, pre-aggregation {preaggregate}"
        );
        println!(
            "combine_exchange: 2 workers, pre-aggregation {}: shipped {} accumulators, {} bytes \
             ({:.1} bytes per element)",
            if preaggregate { "on" } else { "off" },
            exchanged.records,
            exchanged.bytes,
            exchanged.bytes as f64 / ELEMENTS as f64
        );
    }
    println!(
        "combine_exchange: {} CPUs available to this process",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    common::interleaved(
        "combine_exchange",
        runs,
        ELEMENTS,
        &mut [
            ("hand_loop", &mut || hand_loop().len()),
            ("pipeline", &mut || pipeline(1, true).0.len()),
            ("2_workers", &mut || pipeline(2, true).0.len()),
            ("2_workers_no_preagg", &mut || pipeline(2, false).0.len()),
        ],
    );
}
