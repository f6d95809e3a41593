//! Helpers shared by the examples' tests.

use tandem::prelude::*;

/// Runs pipeline `P` on the CPU; prints its summary and checks that its counts add up.
pub fn run_on_cpu<P: Pipeline>(args: &P::Args) -> Summary {
    let config = RunConfig {
        device: DeviceChoice::Cpu,
        ..RunConfig::default()
    };
    let summary = tandem::job::run_pipeline::<P>(args, &config).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{summary}");
    assert!(summary.totals().balanced(), "{summary}");
    summary
}
