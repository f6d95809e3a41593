//! The measuring shared by the benchmarks: an interleaved comparison of variants in one process,
//! printing ratios to the first (the figures BENCHMARKS.md records).

use std::hint::black_box;
use std::time::Instant;

use tandem::RunConfig;

/// `cargo bench` passes `--bench`: then the full measurement; without it (`cargo test --benches`)
/// a quick smoke check. Returns whether it is the full one, and the interleaved rounds:
/// `TANDEM_BENCH_RUNS`, else `full_rounds` (1 for the smoke check).
pub fn bench_mode(full_rounds: usize) -> (bool, usize) {
    let full = std::env::args().any(|a| a == "--bench");
    let runs = std::env::var("TANDEM_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(if full { full_rounds } else { 1 });
    (full, runs)
}

/// The default run configuration; `TANDEM_BENCH_BATCH` overrides its batch size (the size of
/// batches crossing a channel, where the pipeline has one).
pub fn run_config() -> RunConfig {
    let mut config = RunConfig::default();
    if let Some(batch) = std::env::var("TANDEM_BENCH_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
    {
        config.batch_size = batch;
    }
    config
}

/// CPU time used by this process so far (all threads, ended ones included), from
/// `/proc/self/stat` in clock ticks of 1/100 s; 0 where there is no such file.
pub fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces: state is
    // the first, utime and stime the 12th and 13th.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: f64 = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// Runs every variant `runs` times, interleaved (the order rotating each round, so that no
/// variant always follows the same neighbour), and prints for each its mean time, throughput and
/// the CPUs it kept busy, and its throughput ratio to the first variant: mean over mean, and the
/// lowest and highest ratio of single rounds, to show the noise.
pub fn interleaved<R>(
    what: &str,
    runs: usize,
    elements: u64,
    variants: &mut [(&str, &mut dyn FnMut() -> R)],
) {
    let mut rounds = vec![vec![0.0; variants.len()]; runs];
    let mut cpu = vec![0.0; variants.len()];
    for (round, times) in rounds.iter_mut().enumerate() {
        for k in 0..variants.len() {
            let i = (round + k) % variants.len();
            let cpu_before = cpu_seconds();
            let start = Instant::now();
            black_box((variants[i].1)());
            times[i] = start.elapsed().as_secs_f64();
            cpu[i] += cpu_seconds() - cpu_before;
        }
    }
    let seconds: Vec<Vec<f64>> = (0..variants.len())
        .map(|i| rounds.iter().map(|times| times[i]).collect())
        .collect();
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    println!("{what}, interleaved: {runs} runs of each variant, {elements} elements per run");
    for (((name, _), s), cpu) in variants.iter().zip(&seconds).zip(&cpu) {
        println!(
            "  {name:<22} mean {:>8.2} ms  {:>7.2} M elements/s  {:>5.2} CPUs busy",
            mean(s) * 1e3,
            elements as f64 / mean(s) / 1e6,
            cpu / s.iter().sum::<f64>()
        );
    }
    let base = &seconds[0];
    for ((name, _), s) in variants.iter().zip(&seconds).skip(1) {
        let rounds = base.iter().zip(s).map(|(b, v)| b / v);
        let (low, high) = rounds.fold((f64::MAX, 0.0_f64), |(l, h), r| (l.min(r), h.max(r)));
        println!(
            "ratio {name}/{} = {:.2} over {runs} runs (single rounds {low:.2} to {high:.2})",
            variants[0].0,
            mean(base) / mean(s)
        );
    }
}
