//! A first pipeline, no model yet: split ad requests 50/50 by user between two ranking policies
//! (a sticky A/B split), serve one ad per request, and write what each arm served.
//!
//! ```text
//! cargo run --example ab_split                      # reads examples/data/requests.jsonl
//! cargo run --example ab_split -- --graph mermaid   # prints the graph and exits
//! ```
//!
//! `requests.jsonl` holds three broken lines on purpose: they go to `dead-letters.jsonl` with
//! their line numbers, and the summary shows they are accounted for.

use std::path::PathBuf;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use tandem::prelude::*;

#[derive(Debug, clap::Args)]
struct AbArgs {
    /// Ad requests, one JSON object per line.
    #[arg(long, default_value = "examples/data/requests.jsonl")]
    requests: PathBuf,
    /// Where the served ads go.
    #[arg(long, default_value = "served.jsonl")]
    served: PathBuf,
    /// Requests scoring below this are not served.
    #[arg(long, default_value_t = 0.05)]
    min_score: f64,
}

#[derive(Clone, Debug, Deserialize)]
struct AdRequest {
    user_id: u64,
    ad_id: u32,
    score: f64,
    time: u64,
}

#[derive(Debug, Serialize)]
struct Served {
    arm: &'static str,
    user_id: u64,
    ad_id: u32,
    bid: f64,
    time: u64,
}

/// The champion bids the model score as is.
fn champion(r: AdRequest) -> Served {
    Served {
        arm: "champion",
        user_id: r.user_id,
        ad_id: r.ad_id,
        bid: r.score,
        time: r.time,
    }
}

/// The challenger shades its bid for ads it has shown often (a stand-in policy until the
/// ranking models arrive).
fn challenger(r: AdRequest) -> Served {
    let shade = if r.ad_id.is_multiple_of(4) { 0.8 } else { 1.0 };
    Served {
        arm: "challenger",
        user_id: r.user_id,
        ad_id: r.ad_id,
        bid: r.score * shade,
        time: r.time,
    }
}

pipeline! {
    /// Sticky 50/50 split of ad requests between a champion and a challenger policy.
    AbSplit(args: AbArgs) {
        requests = read(JsonLines::<AdRequest>::open(&args.requests))
            -> filter(|r: &AdRequest| r.score >= args.min_score);
        [champ, chall] = requests -> partition(split_by(|r: &AdRequest| r.user_id, [50, 50]));
        a = champ -> map(champion);
        b = chall -> map(challenger);
        merge(a, b) -> write(JsonLines::create(&args.served));
    }
}

fn main() -> ExitCode {
    AbSplit::main()
}
