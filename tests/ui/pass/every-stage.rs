use serde::{Deserialize, Serialize};
use tandem::prelude::*;

#[derive(Clone, Debug, Deserialize, Serialize)]
struct Request {
    user_id: u64,
    score: f64,
}

#[derive(clap::Args)]
struct Args {
    #[arg(long)]
    requests: std::path::PathBuf,
    #[arg(long)]
    report: std::path::PathBuf,
}

fn parse_score(r: Request) -> Result<Request, String> {
    if r.score.is_finite() { Ok(r) } else { Err("score is not finite".into()) }
}

pipeline! {
    /// Every stage once, in the order a user would write them.
    EveryStage(args: Args) {
        requests = read(JsonLines::<Request>::open(&args.requests))
            -> try_map(parse_score)
            -> inspect(|r: &Request| tracing_free_log(r))
            -> filter(|r: &Request| r.score >= 0.0)
            -> map(|mut r| { r.score *= 2.0; r });
        [champ, chall] = requests -> partition(split_by(|r: &Request| r.user_id, [50, 50]));
        a = champ -> key_by(|r: &Request| r.user_id % 10) -> map(|(_, r)| r);
        b = chall -> flat_map(|r: Request| vec![r.clone(), r]);
        everything = merge(a, b);
        everything -> write(JsonLines::create(&args.report));
        everything -> drop();
    }
}

fn tracing_free_log(_: &Request) {}

fn main() {
    assert!(EveryStage::graph().mermaid().contains("-->|everything|"));
    // The standard CLI exists for a `clap::Args` struct; running it here would parse trybuild's args.
    let _: fn() -> std::process::ExitCode = EveryStage::main;
}
