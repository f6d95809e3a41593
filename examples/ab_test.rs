//! Champion/challenger ad ranking, end to end, on SIMULATED traffic: requests are split 50/50 by
//! user id (sticky) between a logistic ranker (the champion) and an MLP with feature crosses (the
//! challenger), each serves its top-scored ad, a simulated user model clicks, and CTR is measured
//! per arm per 5 minutes. At the end: CTR per arm with intervals, the lift, a two-proportion
//! z-test and a decision, and a chart.
//!
//! ```text
//! cargo run --release --example ab_test            # trains the rankers first if they are missing
//! cargo run --example ab_test -- --aa              # A/A: the champion in both arms
//! cargo run --example ab_test -- --traffic 100000 --seed 7 --device cpu
//! cargo run --example ab_test -- --graph mermaid
//! ```
//!
//! Writes `ab_windows.jsonl` (CTR per window per arm) and `ab_test.svg` (the chart); prints the
//! run summary on stderr and the report on stdout. Everything is simulated: the market, the
//! users, their clicks, and the logs the rankers were trained on (see `tandem_examples::ab::sim`).

use std::process::ExitCode;

use tandem::prelude::*;
use tandem_examples::ab::report::read_window_parts;
use tandem_examples::ab::{chart, ensure_trained, AbReport, AbTest};

fn main() -> ExitCode {
    // The standard binary (options, logs, progress, summary, SIGINT/SIGTERM), with the rankers
    // trained first when missing and the report and chart made from the run's windows.
    AbTest::main_with(
        |args| ensure_trained(&args.weights_dir(), args.retrain).map(drop),
        |args, summary| {
            // Split across processes (`--processes`): process 0 reports on the whole job, from
            // every worker's part of the windows file.
            if summary.process != 0 {
                return Ok(());
            }
            let report = if summary.workers > 1 && args.live.is_none() {
                AbReport::of_job(args, &read_window_parts(&args.out, summary.workers)?)
            } else {
                AbReport::new(args, &args.windows.take())
            };
            println!("{report}");
            chart::write_chart(&report, &args.chart)?;
            println!(
                "CTR per window per arm written to {}, the chart to {}",
                args.out.display(),
                args.chart.display()
            );
            Ok(())
        },
    )
}
