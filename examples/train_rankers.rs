//! Trains the two ad rankers of `ab_test` on a SIMULATED impression log, with Burn's autodiff and
//! Adam on the CPU, and saves them (safetensors) with a `rankers.json` training report.
//!
//! ```text
//! cargo run --example train_rankers                      # into $TANDEM_HOME/rankers
//! cargo run --example train_rankers -- --weights-dir DIR --train-rows 50000 --epochs 2
//! ```
//!
//! The log is drawn from the documented simulated click model (`tandem_examples::ab::sim`): users
//! shown one ad at random, clicks drawn with the model's probability. The champion is a logistic
//! model on the raw features, the challenger an MLP on the raw features and their crosses; both
//! are scored on a second simulated log (validation log-loss), next to the click model itself.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tandem_examples::ab::ranker::{default_weights_dir, train, TrainConfig};

/// Train the A/B rankers on a simulated impression log.
#[derive(Parser)]
struct Cli {
    /// Where the weights go [default: $TANDEM_HOME/rankers].
    #[arg(long, value_name = "DIR")]
    weights_dir: Option<PathBuf>,
    /// Rows of the simulated impression log to learn from.
    #[arg(long, value_name = "N")]
    train_rows: Option<usize>,
    /// Rows of the simulated validation log.
    #[arg(long, value_name = "N")]
    valid_rows: Option<usize>,
    /// Passes over the training log.
    #[arg(long, value_name = "N")]
    epochs: Option<usize>,
    /// Seed of the simulated training log and of the weights' initialisation.
    #[arg(long)]
    seed: Option<u64>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let defaults = TrainConfig::default();
    let config = TrainConfig {
        train_rows: cli.train_rows.unwrap_or(defaults.train_rows),
        valid_rows: cli.valid_rows.unwrap_or(defaults.valid_rows),
        epochs: cli.epochs.unwrap_or(defaults.epochs),
        seed: cli.seed.unwrap_or(defaults.seed),
        ..defaults
    };
    let dir = cli.weights_dir.unwrap_or_else(default_weights_dir);
    eprintln!(
        "training the rankers on a simulated impression log into {} ...",
        dir.display()
    );
    match train(&config, &dir) {
        Ok(report) => {
            print!("{report}");
            println!("weights and rankers.json written to {}", dir.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
